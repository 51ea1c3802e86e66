"""Fixtures for central's unit tests: a real SQLite store in a temp dir, a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from central.clock import FakeClock
from central.storage.sqlite import SqliteStore
from central.tokens import TokenSigner
from tests.unit.central.support import make_signer, open_store, seed


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "central.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def signer() -> TokenSigner:
    return make_signer()


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    """A migrated, empty store."""
    opened = await open_store(db_path)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def library(store: SqliteStore, clock: FakeClock) -> SqliteStore:
    """The store seeded with a shelf, three items, two members and two kiosks."""
    await seed(store, clock.now())
    return store
