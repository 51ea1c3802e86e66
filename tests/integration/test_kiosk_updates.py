"""A kiosk in this process takes a fleet update only once its member is done: central offers,
the kiosk waits out the session, then downloads, verifies, unpacks and asks to restart."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from broker.local import LocalBroker
from central.settings import CentralSettings
from hardware.recording import ManualButton
from kiosk.feedback import Signal
from provisioning.releases import sign
from tests.conftest import central_settings, seed_library, start_central
from tests.support.kiosks import running_kiosk, until
from tests.support.releases import ReleaseKey, build_release, eventually


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_release(tmp_path_factory.mktemp("wheel"), "0.2.0")


def settings(tmp_path: Path, broker: LocalBroker) -> CentralSettings:
    return central_settings(tmp_path, broker, update_every_s=0.2, update_resend_s=1)


async def test_an_offer_waits_for_the_members_session_then_installs_and_restarts(
    tmp_path: Path, broker: LocalBroker, wheel: Path
) -> None:
    key = ReleaseKey()
    async with start_central(settings(tmp_path, broker)) as central:
        admin = central.admin
        await seed_library(admin)
        data = await asyncio.to_thread(wheel.read_bytes)
        body = {
            "version": "0.2.0",
            "artifact": base64.b64encode(data).decode(),
            "signature": sign(key.private, "0.2.0", data),
        }
        (await admin.post("/releases", json=body)).raise_for_status()
        pass_code = (await admin.post("/members/M-1001/passes", json={})).json()["code"]
        state = tmp_path / "k"
        async with running_kiosk(
            "KIOSK-A1",
            broker,
            state,
            update_keys=[key.public],
            update_check_every_s=0.05,
        ) as k:
            await k.show(pass_code, Signal.SESSION_OPENED)
            rollout = {"version": "0.2.0", "kiosks": ["KIOSK-A1"], "reason": "test"}
            (await admin.post("/rollouts", json=rollout)).raise_for_status()

            async def offered() -> bool:
                progress = (await admin.get("/rollouts/1")).json()["progress"]
                return bool(progress) and progress[0]["offers"] >= 2

            await eventually(offered, within=10, every=0.1)
            # Offered twice over, and the member is still here: nothing fetched yet.
            assert k.kiosk.updater.progress is None
            assert not (state / "releases").exists()
            assert not k.task.done()

            assert isinstance(k.button, ManualButton)
            k.button.press()
            await k.until_signal(Signal.SESSION_CLOSED)
            # Now idle: it installs and stops itself for systemd to start the new version.
            await until(k.task.done, within=30)
        saved = json.loads((state / "releases" / "state.json").read_text())
        assert saved["current"] == "0.2.0"
        assert saved["trial"]["version"] == "0.2.0"
        assert saved["last"]["state"] == "installed"
        assert (state / "releases" / "0.2.0" / "kiosk" / "updater.py").exists()
