"""The configuration and status messages grew fields; what the first release sent still parses."""

from __future__ import annotations

import json

import pytest

from broker.errors import ContractError
from broker.messages import (
    CameraConfig,
    KioskConfig,
    KioskStatus,
    PinConfig,
    Sound,
    encode,
    parse_message,
)

# Byte for byte what central and kiosks of the first release published (retained).
FIRST_CONFIG = (
    b'{"v":1,"kiosk_id":"KIOSK-A1","shelf_id":"SHELF-A","config_version":3,'
    b'"session_timeout_s":60.0,"checkout_enabled":true}'
)
FIRST_STATUS = (
    b'{"v":1,"kiosk_id":"KIOSK-A1","state":"online","software_version":"0.1.0",'
    b'"config_version":3,"outbox_depth":0,"camera_ok":true,"at":"2026-01-05T09:00:00Z"}'
)


def test_a_first_release_config_parses_with_nothing_extra_set() -> None:
    config = parse_message(KioskConfig, FIRST_CONFIG)

    assert (config.pins, config.camera, config.feedback) == (None, None, None)
    # A config that sets nothing new encodes as before, so first-release kiosks (whose
    # model refuses unknown fields) still accept every shelf or timeout change.
    assert encode(config) == FIRST_CONFIG


def test_a_first_release_status_parses_without_health_figures() -> None:
    status = parse_message(KioskStatus, FIRST_STATUS)

    assert (status.camera_fps, status.decode_ms, status.config_problem) == (None, None, None)


def test_new_groups_round_trip() -> None:
    config = KioskConfig(
        kiosk_id="KIOSK-A1",
        shelf_id="SHELF-A",
        config_version=4,
        pins=PinConfig(buzzer=12),
        camera=CameraConfig(size=(800, 600), fps=15, exposure_us=2000, focus=3.5),
    )

    again = parse_message(KioskConfig, encode(config))

    assert again == config
    assert json.loads(encode(config))["pins"] == {"buzzer": 12}  # unset pins stay off the wire


@pytest.mark.parametrize(
    "change",
    [
        {"pins": {"red": 5, "green": 5}},  # two devices on one pin
        {"pins": {"red": 28}},  # not a BCM GPIO on the header
        {"camera": {"size": [640]}},
        {"camera": {"fps": 0}},
        {"camera": {"iso": 100}},  # unknown fields are refused, as everywhere
        {"feedback": {"sound": "loud"}},
    ],
)
def test_bad_settings_are_refused(change: dict[str, object]) -> None:
    data = {**json.loads(FIRST_CONFIG), **change}

    with pytest.raises(ContractError, match="bad_fields"):
        parse_message(KioskConfig, json.dumps(data).encode())


def test_sound_values_are_the_documented_three() -> None:
    assert [s.value for s in Sound] == ["all", "refusals", "off"]
