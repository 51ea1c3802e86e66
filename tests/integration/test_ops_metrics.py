"""Operator metrics on a real central: flag mode, breaker state, kiosks going offline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from broker.local import LocalBroker
from tests.conftest import RunningCentral, seed_library
from tests.support.kiosks import running_kiosk, until


async def sample(central: RunningCentral, line_start: str, within: float = 10) -> str:
    deadline = time.monotonic() + within
    while True:
        text = (await central.admin.get("/metrics")).text
        found = [line for line in text.splitlines() if line.startswith(line_start)]
        if found or time.monotonic() > deadline:
            assert found, f"no {line_start!r} in /metrics"
            return found[0].rsplit(" ", 1)[1]
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
async def test_flag_and_breaker_gauges_and_kiosk_disconnects(
    central: RunningCentral, broker: LocalBroker, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    assert await sample(central, 'qr_rollout_mode{mode="on"}') == "1.0"
    assert await sample(central, "qr_breaker_tripped ") == "0.0"
    changed = await central.admin.put(
        "/rollout/flag", json={"mode": "percentage", "percent": 25, "reason": "week 2"}
    )
    assert changed.status_code == 200, changed.text
    assert await sample(central, 'qr_rollout_mode{mode="percentage"}') == "1.0"
    assert await sample(central, 'qr_rollout_mode{mode="on"}') == "0.0"
    assert await sample(central, "qr_rollout_percent ") == "25.0"

    assert await sample(central, "qr_kiosk_disconnects_total ") == "0.0"
    async with running_kiosk("KIOSK-A1", broker, tmp_path / "k") as k:
        await until(lambda: k.kiosk.config is not None)
        await until_online(central, "KIOSK-A1")
    # A clean stop says "stopped": one kiosk gone.
    deadline = time.monotonic() + 10
    while await sample(central, "qr_kiosk_disconnects_total ") != "1.0":
        assert time.monotonic() < deadline, "the disconnect was not counted"
        await asyncio.sleep(0.1)


async def until_online(central: RunningCentral, kiosk_id: str, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while True:
        kiosks = {k["kiosk_id"]: k["state"] for k in (await central.admin.get("/kiosks")).json()}
        if kiosks.get(kiosk_id) == "online":
            return
        assert time.monotonic() < deadline, f"{kiosk_id} never showed online: {kiosks}"
        await asyncio.sleep(0.1)
