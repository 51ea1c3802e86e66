"""A first-boot bundle becomes the kiosk's private enrolment, and leaves the SD card."""

from __future__ import annotations

import asyncio
import getpass
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from broker.bundle import BUNDLE_FILE, EnrolmentBundle
from broker.local import free_port
from broker.messages import KioskConfig
from central.tokens import KeyRing, TokenSigner
from hardware.interfaces import Capture, Frame
from hardware.recording import ManualButton, RecordingBuzzer, RecordingLights
from hardware.synthetic import render_code
from hardware.zxing import ZxingDecoder
from kiosk import enrolment
from kiosk.parts import Devices
from kiosk.settings import UNENROLLED, KioskSettings


def bundle(password: str = "s3cret-pw") -> EnrolmentBundle:
    return EnrolmentBundle(
        kiosk_id="KIOSK-C1",
        shelf_id="SHELF-A",
        mqtt_host="broker.library.example",
        mqtt_port=8883,
        ca_pem="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        mqtt_password=SecretStr(password),
        config=KioskConfig(
            kiosk_id="KIOSK-C1", shelf_id="SHELF-A", config_version=1, session_timeout_s=45.0
        ),
    )


def test_the_bundle_moves_into_a_private_state_file_and_off_the_card(tmp_path: Path) -> None:
    card, state = tmp_path / "boot" / "communityshare", tmp_path / "state"
    card.mkdir(parents=True)
    (card / BUNDLE_FILE).write_text(bundle().model_dump_json())

    code = enrolment.main(
        ["--bundle-dir", str(card), "--state-dir", str(state), "--owner", getpass.getuser()]
    )

    assert code == 0
    assert not (card / BUNDLE_FILE).exists()
    assert (state / enrolment.STATE_FILE).stat().st_mode & 0o777 == 0o600
    assert state.stat().st_mode & 0o777 == 0o700
    loaded = enrolment.load(state)
    assert loaded is not None
    assert loaded.mqtt_password.get_secret_value() == "s3cret-pw"
    # Nothing to do on the next boot.
    assert enrolment.main(["--bundle-dir", str(card), "--state-dir", str(state)]) == 0


def test_a_damaged_bundle_is_refused_and_left_for_the_admin(tmp_path: Path) -> None:
    card = tmp_path / "card"
    card.mkdir()
    (card / BUNDLE_FILE).write_text('{"kiosk_id": "KIOSK-C1"}')
    assert enrolment.main(["--bundle-dir", str(card), "--state-dir", str(tmp_path / "s")]) == 1
    assert (card / BUNDLE_FILE).exists()


def test_the_enrolment_supplies_identity_broker_and_tls(tmp_path: Path) -> None:
    settings = KioskSettings(state_dir=tmp_path)
    assert settings.kiosk_id == UNENROLLED
    applied = enrolment.apply(settings, bundle(), tmp_path)
    assert applied.kiosk_id == "KIOSK-C1"
    assert applied.mqtt_username == "KIOSK-C1"
    assert (applied.mqtt_host, applied.mqtt_port) == ("broker.library.example", 8883)
    assert applied.mqtt_tls_ca == tmp_path / enrolment.CA_FILE
    assert applied.session_timeout_s == 45.0
    # The password is masked wherever settings or bundles are printed.
    assert "s3cret-pw" not in repr(applied)
    assert "s3cret-pw" not in repr(bundle())


async def test_an_unenrolled_kiosk_without_a_claim_address_says_what_to_do(
    tmp_path: Path,
) -> None:
    settings = KioskSettings(state_dir=tmp_path)
    with pytest.raises(enrolment.EnrolmentError, match="not enrolled"):
        await enrolment.wait_for_claim(settings, devices=None)  # type: ignore[arg-type]


class DriverCamera:
    """A camera whose driver hands over the given frames in order, then the last forever."""

    def __init__(self, frames: list[Any]) -> None:
        self._frames = list(frames)

    def start(self) -> None:
        pass

    def read(self, timeout: float) -> Frame:
        time.sleep(1 / 30)  # a sensor's pace
        frame: Frame = self._frames.pop(0) if len(self._frames) > 1 else self._frames[0]
        return frame

    def capture(self, timeout: float) -> Capture:
        return Capture(self.read(timeout))  # one stream, as a USB camera has

    def stop(self) -> None:
        pass


async def test_zero_touch_scans_past_a_bad_frame_and_says_when_central_cannot_be_reached(
    tmp_path: Path,
) -> None:
    signer = TokenSigner(KeyRing({"K1": b"k" * 32}, "K1"))
    code = signer.enrolment("CLAIM-1", "SHELF-A", datetime(2030, 1, 1, tzinfo=UTC))
    lights = RecordingLights(time.monotonic)
    devices = Devices(
        camera=DriverCamera([np.zeros((480, 640, 3), np.uint8), render_code(code)]),
        decoder=ZxingDecoder(),
        lights=lights,
        buzzer=RecordingBuzzer(time.monotonic),
        button=ManualButton(),
    )
    settings = KioskSettings(state_dir=tmp_path, claim_url=f"http://127.0.0.1:{free_port()}")

    claiming = asyncio.create_task(enrolment.wait_for_claim(settings, devices))
    try:
        async with asyncio.timeout(10):
            while lights.states.count(enrolment.WAITING) < 2:  # noqa: ASYNC110 - a recording fake
                await asyncio.sleep(0.02)
        assert not claiming.done()  # still waiting for a code central accepts
    finally:
        claiming.cancel()
    # Blue while waiting, red for the failed claim, blue again: one colour per change, not
    # one per frame.
    assert lights.states[:3] == [enrolment.WAITING, enrolment.REFUSED, enrolment.WAITING]
