"""A first-boot bundle becomes the kiosk's private enrolment, and leaves the SD card."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.bundle import BUNDLE_FILE, EnrolmentBundle
from broker.messages import KioskConfig
from kiosk import enrolment
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
