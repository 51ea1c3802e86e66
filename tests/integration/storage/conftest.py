"""Fixtures for the storage tests: each test runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from central.clock import FakeClock
from central.tokens import TokenSigner
from tests.integration.storage.support import BACKENDS, open_backend
from tests.unit.central.support import AnyStore, make_signer, seed


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test (a test narrows it with ``parametrize("backend", …)``)."""
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def signer() -> TokenSigner:
    return make_signer()


@pytest.fixture
async def empty_store(backend: str, tmp_path: Path) -> AsyncIterator[AnyStore]:
    """An open store on an empty database, not migrated."""
    async with open_backend(backend, tmp_path, migrate=False) as store:
        yield store


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[AnyStore]:
    """An open store, migrated to the newest schema, with no rows."""
    async with open_backend(backend, tmp_path) as opened:
        yield opened


@pytest.fixture
async def library(store: AnyStore, clock: FakeClock) -> AnyStore:
    """The store seeded with a shelf, three items, two members and two kiosks."""
    await seed(store, clock.now())
    return store
