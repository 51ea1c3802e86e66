"""A kiosk process killed between scan and verdict, and a broker gone for 30 seconds."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import segno
from PIL import Image

from broker import topics
from broker.local import LocalBroker
from broker.messages import CodeScan, KioskState, KioskStatus, encode
from kiosk.feedback import Signal
from testkit.probe import Probe
from tests.conftest import RunningCentral, central_settings, seed_library, start_central
from tests.support.kiosks import running_kiosk, until


def kiosk_process(
    kiosk_id: str, port: int, state: Path, images: list[Path], log: Path
) -> subprocess.Popen[bytes]:
    """``python -m kiosk`` as systemd runs it, its camera replaying ``images`` (looped)."""
    env = {
        **os.environ,
        "CS_KIOSK_KIOSK_ID": kiosk_id,
        "CS_KIOSK_MQTT_PORT": str(port),
        "CS_KIOSK_STATE_DIR": str(state),
        "CS_KIOSK_CAMERA": json.dumps(
            {"type": "replay", "paths": [str(i) for i in images], "loop": True}
        ),
        "CS_KIOSK_PINS": json.dumps({"mock": True}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "kiosk"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def outbox_rows(state: Path) -> int:
    path = state / "outbox.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        try:
            return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


async def wait_for(predicate: object, within: float) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def checked_out_drill(central: RunningCentral, probe: Probe) -> str:
    """Ada takes the drill at KIOSK-A1; the drill's label code."""
    await seed_library(central.admin)
    pass_code = (await central.admin.post("/members/M-1001/passes", json={})).json()["code"]
    drill = (await central.admin.get("/items/DRILL-01/label")).json()["code"]
    probe.subscribe(topics.verdict("KIOSK-A1"))
    for code in (pass_code, drill):
        event = CodeScan(
            event_id=uuid.uuid4().hex, kiosk_id="KIOSK-A1", code=code, scanned_at=datetime.now(UTC)
        )
        probe.publish(topics.scan("KIOSK-A1"), encode(event))
        await asyncio.to_thread(probe.next, 10.0, topic_suffix="/verdict")
    return str(drill)


@pytest.mark.slow
async def test_kill_9_between_scan_and_verdict_delivers_once_and_shows_it(
    tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    settings = central_settings(tmp_path, broker)
    async with start_central(settings) as central:
        drill = await checked_out_drill(central, probe)
        # The drill's shelf is SHELF-A; KIOSK-B1 is the desk's, which takes any returns.
        desk = await central.admin.patch("/kiosks/KIOSK-B1/config", json={"return_point": True})
        assert desk.status_code == 200, desk.text
    # Central is down: the kiosk's scan gets no verdict and waits in its outbox.
    label_png = tmp_path / "drill.png"
    segno.make_qr(drill, error="m").save(str(label_png), scale=5, border=4)
    blank_png = tmp_path / "blank.png"
    Image.fromarray(np.full((480, 640), 200, dtype=np.uint8)).save(blank_png)
    state = tmp_path / "kiosk-B1"
    # Three seconds of nothing first, so the code is scanned online (not queued offline):
    # the member is standing at a working kiosk when the power goes.
    first = kiosk_process(
        "KIOSK-B1", broker.port, state, [blank_png] * 90 + [label_png] * 30, tmp_path / "k1.log"
    )
    try:
        await wait_for(lambda: outbox_rows(state) == 1, within=30)
    finally:
        first.send_signal(signal.SIGKILL)  # power cut between scan and verdict
        first.wait()
    assert outbox_rows(state) == 1
    assert "queued-offline" not in (tmp_path / "k1.log").read_text()

    log = tmp_path / "k2.log"
    async with start_central(settings) as central:
        second = kiosk_process("KIOSK-B1", broker.port, state, [blank_png], log)
        try:
            await wait_for(lambda: outbox_rows(state) == 0, within=30)
            await wait_for(lambda: "pattern returned" in log.read_text(), within=10)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=15) == 0
        audit = (await central.admin.get("/audit", params={"limit": 500})).json()
        items = {i["item_id"]: i["state"] for i in (await central.admin.get("/items")).json()}
    returns = [r for r in audit if r["reason"] == "RETURNED"]
    assert [(r["kiosk_id"], r["item_id"]) for r in returns] == [("KIOSK-B1", "DRILL-01")]
    assert items["DRILL-01"] == "available"
    assert "verdict RETURNED" in log.read_text()


@pytest.mark.slow
async def test_thirty_seconds_without_the_broker_loses_no_return_and_doubles_none(
    tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    settings = central_settings(tmp_path, broker)
    async with start_central(settings) as central:
        admin = central.admin
        await seed_library(admin)
        pass_code = (await admin.post("/members/M-1002/passes", json={})).json()["code"]
        labels = [
            (await admin.get(f"/items/{i}/label")).json()["code"] for i in ("DRILL-01", "SAW-01")
        ]
        async with running_kiosk("KIOSK-A1", broker, tmp_path / "k", debounce_s=0.4) as k:
            await k.show(pass_code, Signal.SESSION_OPENED)
            for label in labels:
                await k.show(label, Signal.CHECKED_OUT)
            k.button.press()
            await k.until_signal(Signal.SESSION_CLOSED)

            broker.stop()
            outage = time.monotonic()
            await until(lambda: not k.kiosk.walkup.online)
            for label in labels:
                await k.step_away()
                await k.show(label, Signal.QUEUED)
            assert k.kiosk.outbox.depth == 2
            await asyncio.sleep(max(0.0, 30 - (time.monotonic() - outage)))
            broker.start()
            await until(lambda: k.kiosk.walkup.online, within=30)
            await until(lambda: k.kiosk.outbox.depth == 0, within=30)
        audit = (await admin.get("/audit", params={"limit": 500})).json()
        items = {i["item_id"]: i["state"] for i in (await admin.get("/items")).json()}
    assert sorted(r["item_id"] for r in audit if r["reason"] == "RETURNED") == [
        "DRILL-01",
        "SAW-01",
    ]
    assert items["DRILL-01"] == items["SAW-01"] == "available"


async def test_a_stalled_camera_is_reported_shown_and_recovered(
    tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    probe.subscribe(topics.status("KIOSK-A1"))
    async with running_kiosk("KIOSK-A1", broker, tmp_path / "k", frame_timeout_s=0.5) as k:
        await until(lambda: k.pin("blue"))  # idle, camera fine
        k.camera.stall()
        await until(lambda: k.pin("red") and not k.pin("green") and not k.pin("blue"))
        while True:  # the fleet sees it in the kiosk's retained status
            received = await asyncio.to_thread(probe.next, 10.0, topic_suffix="/status")
            status = KioskStatus.model_validate_json(received.payload)
            if not status.camera_ok:
                break
        assert status.state is KioskState.ONLINE
        k.camera.resume()  # the kiosk keeps reopening the camera; it comes back
        await until(lambda: k.pin("blue") and not k.pin("red"), within=10)
        while True:
            received = await asyncio.to_thread(probe.next, 10.0, topic_suffix="/status")
            if KioskStatus.model_validate_json(received.payload).camera_ok:
                break
