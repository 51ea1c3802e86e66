"""``/health`` and ``/ready`` on a real central: no token needed, and /ready says what is wrong."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from fastapi import FastAPI

from broker.local import LocalBroker
from central.api import health as api_health
from central.storage.sqlite import SqliteStore
from tests.conftest import RunningCentral


async def until_status(
    client: httpx.AsyncClient, status: int, within: float = 15
) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        response = await client.get("/ready")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.1)


async def test_ready_says_the_broker_is_down_and_recovers_when_it_is_back(
    central: RunningCentral, broker: LocalBroker
) -> None:
    async with httpx.AsyncClient(base_url=str(central.admin.base_url), timeout=10) as anonymous:
        health = await anonymous.get("/health")
        assert health.status_code == 200
        ready = await anonymous.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "ready": True,
            "checks": {
                "database": "ok",
                "broker": "connected",
                "queue_depth": 0,
                "consumer_stalled_s": 0.0,
            },
            "problems": [],
        }

        broker.stop()
        down = await until_status(anonymous, 503)
        assert down.status_code == 503, down.text
        assert down.json()["problems"] == ["broker: disconnected"]
        assert down.json()["checks"]["database"] == "ok"
        assert (await anonymous.get("/health")).status_code == 200  # alive, just not ready

        broker.start()
        back = await until_status(anonymous, 200, within=30)
        assert back.status_code == 200, back.text
        assert back.json()["ready"] is True


async def test_ready_names_a_database_that_does_not_answer_and_a_backlog(tmp_path: Path) -> None:
    store = await SqliteStore(tmp_path / "central.db").open()
    await store.migrate()
    depth = [0]
    app = FastAPI()
    app.include_router(
        api_health.router(store, lambda: True, lambda: depth[0], max_queue=100, db_timeout_s=1)
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://central"
    ) as client:
        assert (await client.get("/ready")).status_code == 200
        depth[0] = 101
        backlog = await client.get("/ready")
        assert backlog.status_code == 503
        assert backlog.json()["problems"] == ["queue: 101 scans waiting (more than 100)"]
        depth[0] = 0
        await store.close()
        gone = await client.get("/ready")
        assert gone.status_code == 503
        assert gone.json()["problems"] == ["database: StorageError: store is not open"]
