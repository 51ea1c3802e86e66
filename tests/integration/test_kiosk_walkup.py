"""A member at a kiosk: camera frames in, LED and buzzer pins out, via real broker and central."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.local import LocalBroker
from kiosk.feedback import Signal
from kiosk.walkup import Mode
from tests.conftest import RunningCentral, seed_library
from tests.support.kiosks import running_kiosk, until


@pytest.mark.parametrize("decoder", ["pyzbar", "zxing-cpp"])
async def test_checkout_two_items_done_reuse_refused_and_return(
    central: RunningCentral, broker: LocalBroker, tmp_path: Path, decoder: str
) -> None:
    admin = central.admin
    await seed_library(admin)
    pass_code = (await admin.post("/members/M-1002/passes", json={})).json()["code"]
    drill = (await admin.get("/items/DRILL-01/label")).json()["code"]
    saw = (await admin.get("/items/SAW-01/label")).json()["code"]

    async with running_kiosk(
        "KIOSK-A1", broker, tmp_path / "k", decoder=decoder, debounce_s=0.4
    ) as k:
        await until(lambda: k.kiosk.config is not None)
        assert k.pin("blue")
        assert not k.pin("green")  # idle: blue only

        await k.show(pass_code, Signal.SESSION_OPENED)
        assert k.mode() is Mode.SESSION
        assert k.kiosk.walkup.member_name == "Grace"
        await k.until_signal(Signal.SESSION)
        await until(lambda: k.pin("green") and not k.pin("buzzer"))

        mark = await k.show(drill, Signal.CHECKED_OUT)
        await k.show(saw, Signal.CHECKED_OUT)
        # The other kiosks on the shelf (and this one) hear both items go out.
        await until(lambda: k.kiosk.availability["SAW-01"].state.value == "checked_out")
        assert k.kiosk.availability["DRILL-01"].state.value == "checked_out"
        assert k.kiosk.player.history[mark:].count(Signal.CHECKED_OUT) == 2

        mark = len(k.kiosk.player.history)
        k.button.press()
        await k.until_signal(Signal.SESSION_CLOSED, after=mark)
        assert k.mode() is Mode.IDLE

        await k.step_away()  # someone else picks the pass up later and tries it
        await k.show(pass_code, Signal.REFUSED_USED)
        assert k.mode() is Mode.IDLE

        await k.show(drill, Signal.RETURNED)
        await until(lambda: k.kiosk.availability["DRILL-01"].state.value == "available")
        assert k.kiosk.outbox.depth == 0
        # The buzzer is silent once the moment is over.
        await until(lambda: not k.pin("buzzer"))

    # A clean stop leaves every LED dark.
    assert not any(k.pin(name) for name in ("red", "green", "blue", "buzzer"))
    items = {i["item_id"]: i["state"] for i in (await admin.get("/items")).json()}
    assert items["SAW-01"] == "checked_out"
    assert items["DRILL-01"] == "available"


async def test_a_code_held_in_view_is_one_scan(
    central: RunningCentral, broker: LocalBroker, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    pass_code = (await central.admin.post("/members/M-1001/passes", json={})).json()["code"]
    async with running_kiosk("KIOSK-A1", broker, tmp_path / "k") as k:
        k.camera.show(pass_code, frames=60)  # two seconds in front of the camera
        await k.until_signal(Signal.SESSION_OPENED)
        await until(lambda: not k.camera.showing, within=10)
        # Had the held pass been sent twice, the second would be refused as used.
        assert Signal.REFUSED_USED not in k.kiosk.player.history
    audit = (await central.admin.get("/audit", params={"limit": 500})).json()
    assert [r["reason"] for r in audit if r["action"] == "scan.code"] == ["SESSION_OPENED"]


async def test_offline_return_is_queued_then_delivered_once(
    central: RunningCentral, broker: LocalBroker, tmp_path: Path
) -> None:
    admin = central.admin
    await seed_library(admin)
    pass_code = (await admin.post("/members/M-1001/passes", json={})).json()["code"]
    drill = (await admin.get("/items/DRILL-01/label")).json()["code"]
    async with running_kiosk("KIOSK-A1", broker, tmp_path / "k", debounce_s=0.4) as k:
        await k.show(pass_code, Signal.SESSION_OPENED)
        await k.show(drill, Signal.CHECKED_OUT)
        k.button.press()
        await k.until_signal(Signal.SESSION_CLOSED)

        broker.stop()
        await until(lambda: not k.kiosk.walkup.online)
        await until(lambda: k.pin("red") and k.pin("green"))  # amber: offline
        await k.step_away()  # the drill comes back a while later
        await k.show(drill, Signal.QUEUED)
        await k.show(pass_code, Signal.REFUSED_OFFLINE)
        assert k.kiosk.outbox.depth == 1

        broker.start()
        await until(lambda: k.kiosk.walkup.online, within=30)
        await until(lambda: k.kiosk.outbox.depth == 0, within=15)
    items = {i["item_id"]: i["state"] for i in (await admin.get("/items")).json()}
    assert items["DRILL-01"] == "available"
    audit = (await admin.get("/audit", params={"limit": 500})).json()
    assert [r["reason"] for r in audit if r["action"] == "scan.code"].count("RETURNED") == 1
