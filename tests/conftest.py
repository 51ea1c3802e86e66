"""Fixtures that start real parts: Mosquitto on a free port, central on a temp database."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.local import LocalBroker, free_port
from central.clock import Clock
from central.service import Deps, run
from central.settings import CentralSettings
from testkit.postgres import fresh_database
from testkit.probe import Probe
from testkit.security import LIMITS_OFF


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A real Mosquitto with the development config."""
    with LocalBroker(tmp_path / "broker") as running:
        yield running


@dataclass
class RunningCentral:
    """A central instance running in this event loop, and an admin client for it."""

    settings: CentralSettings
    admin: httpx.AsyncClient
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def start_central(
    settings: CentralSettings, clock: Clock | None = None, *, ca: Path | None = None
) -> AsyncIterator[RunningCentral]:
    """Run central (on ``clock`` if given) until the block ends; yield once its API answers
    (over HTTPS, trusting ``ca``, when given)."""
    ready = asyncio.Event()
    deps = Deps(ready=ready) if clock is None else Deps(clock=clock, ready=ready)
    task = asyncio.create_task(run(settings, deps), name="central")
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raise the startup failure
    assert waiter in done, "central did not become ready"
    token = (settings.data_dir / "admin.token").read_text().strip()
    async with httpx.AsyncClient(
        base_url=f"{'https://localhost' if ca else 'http://127.0.0.1'}:{settings.admin_port}",
        verify=ssl.create_default_context(cafile=str(ca)) if ca else True,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as admin:
        try:
            yield RunningCentral(settings, admin, task)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def central_settings(tmp_path: Path, broker: LocalBroker, **extra: Any) -> CentralSettings:
    """Settings for a test central on ``broker`` with its own data dir and ports."""
    return CentralSettings(
        instance_id=f"central-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path / "central",
        mqtt_port=broker.port,
        admin_port=free_port(),
        **{**LIMITS_OFF, **extra},
    )


@contextlib.asynccontextmanager
async def backend_settings(
    backend: str, tmp_path: Path, broker: LocalBroker, **extra: Any
) -> AsyncIterator[CentralSettings]:
    """Central settings on ``backend``: a temp SQLite file, or a fresh PostgreSQL database."""
    if backend == "sqlite":
        yield central_settings(tmp_path, broker, **extra)
        return
    async with fresh_database() as dsn:
        yield central_settings(tmp_path, broker, database="postgres", postgres_dsn=dsn, **extra)


@pytest.fixture(params=["sqlite", "postgres"])
async def central(
    request: pytest.FixtureRequest, tmp_path: Path, broker: LocalBroker
) -> AsyncIterator[RunningCentral]:
    """A real central connected to ``broker``, once on SQLite and once on PostgreSQL."""
    async with (
        backend_settings(request.param, tmp_path, broker) as settings,
        start_central(settings) as running,
    ):
        yield running


@pytest.fixture
def probe(broker: LocalBroker) -> Iterator[Probe]:
    """A raw MQTT client on ``broker``."""
    client = Probe(broker.port, client_id=f"probe-{uuid.uuid4().hex[:6]}")
    yield client
    client.close()


async def seed_library(admin: httpx.AsyncClient) -> None:
    """A small library: two shelves, three items, two members, two kiosks."""
    for shelf in (
        {"shelf_id": "SHELF-A", "name": "Power tools"},
        {"shelf_id": "SHELF-B", "name": "Garden"},
    ):
        (await admin.post("/shelves", json=shelf)).raise_for_status()
    for item in (
        {"item_id": "DRILL-01", "shelf_id": "SHELF-A", "name": "Cordless drill"},
        {"item_id": "SAW-01", "shelf_id": "SHELF-A", "name": "Jigsaw"},
        {"item_id": "RAKE-01", "shelf_id": "SHELF-B", "name": "Leaf rake"},
    ):
        (await admin.post("/items", json=item)).raise_for_status()
    for member in (
        {"member_id": "M-1001", "name": "Ada", "checkout_limit": 2},
        {"member_id": "M-1002", "name": "Grace"},
    ):
        (await admin.post("/members", json=member)).raise_for_status()
    for kiosk in (
        {"kiosk_id": "KIOSK-A1", "shelf_id": "SHELF-A"},
        {"kiosk_id": "KIOSK-B1", "shelf_id": "SHELF-B"},
    ):
        (await admin.post("/kiosks", json=kiosk)).raise_for_status()
