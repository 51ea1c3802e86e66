"""Kiosk settings: strict, picked by tags, checkable with --validate-config, buildable off a Pi."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory
from pydantic import ValidationError

from hardware.interfaces import Rgb
from hardware.pipeline import ScanPipeline
from hardware.replay import SceneCamera
from kiosk import service
from kiosk.devices import build_devices
from kiosk.settings import (
    UNENROLLED,
    KioskSettings,
    PiCameraSettings,
    PinSettings,
    ReplayCameraSettings,
    SceneCameraSettings,
    load_settings,
)

KIOSK = "KIOSK-A1"
LABEL = "CS1.L.K1.DRILL-01.1.AAAAAAAAAAAAAAAAAAAAAAAA"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CS_KIOSK_* or systemd credentials from the machine running the tests."""
    for name in list(os.environ):
        if name.upper().startswith("CS_KIOSK_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """``main`` installs JSON logging on the root logger; put the test runner's back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# -- the model -------------------------------------------------------------------------


def test_defaults_suit_a_pi() -> None:
    settings = KioskSettings(kiosk_id=KIOSK)

    assert isinstance(settings.camera, PiCameraSettings)
    assert settings.decoder == "zxing-cpp"
    assert settings.pins.mock is False
    assert settings.mqtt_password is None


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="session_timeout"):
        KioskSettings(kiosk_id=KIOSK, session_timeout=30)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "nested",
    [
        {"pins": {"red": 17, "grene": 27}},
        {"camera": {"type": "scene", "fps": 15, "resolution": "hd"}},
        {"camera": {"type": "picamera", "autofocus": True, "hdr": True}},
    ],
)
def test_unknown_nested_fields_are_refused(nested: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        KioskSettings(kiosk_id=KIOSK, **nested)


@pytest.mark.parametrize(
    "kiosk_id",
    ["", "kiosk-a1", "KIOSK A1", "KIOSK/A1", "KIOSK+", "KIOSK#", "-KIOSK", "K" * 33, "KIOSK.A1"],
)
def test_a_kiosk_id_that_could_not_be_its_mqtt_identity_is_refused(kiosk_id: str) -> None:
    with pytest.raises(ValidationError, match="kiosk_id"):
        KioskSettings(kiosk_id=kiosk_id)


def test_without_an_id_a_kiosk_starts_unenrolled() -> None:
    # It then takes its id from a bundle or an enrolment QR (kiosk/enrolment.py).
    assert KioskSettings().kiosk_id == UNENROLLED


@pytest.mark.parametrize(
    ("field", "value"),
    [("mqtt_port", 0), ("mqtt_port", 70000), ("session_timeout_s", 0), ("debounce_s", -1)],
)
def test_out_of_range_values_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        KioskSettings.model_validate({"kiosk_id": KIOSK, field: value})


def test_camera_backend_is_picked_by_its_type_tag_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CS_KIOSK_KIOSK_ID", KIOSK)
    monkeypatch.setenv("CS_KIOSK_CAMERA", '{"type":"scene","fps":15}')

    settings = load_settings()

    assert settings.kiosk_id == KIOSK
    assert isinstance(settings.camera, SceneCameraSettings)
    assert settings.camera.fps == 15


def test_replay_camera_is_picked_by_its_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CS_KIOSK_KIOSK_ID", KIOSK)
    monkeypatch.setenv("CS_KIOSK_CAMERA", '{"type":"replay","paths":["a.png","b.png"]}')

    settings = load_settings()

    assert isinstance(settings.camera, ReplayCameraSettings)
    assert settings.camera.paths == [Path("a.png"), Path("b.png")]


@pytest.mark.parametrize(
    "camera",
    [
        '{"type":"webcam"}',  # no such backend
        '{"fps":15}',  # no tag: which backend is meant is not guessed
        '{"type":"replay"}',  # a replay needs frames
        '{"type":"scene","fps":0}',
    ],
)
def test_a_bad_camera_is_refused(monkeypatch: pytest.MonkeyPatch, camera: str) -> None:
    monkeypatch.setenv("CS_KIOSK_KIOSK_ID", KIOSK)
    monkeypatch.setenv("CS_KIOSK_CAMERA", camera)

    with pytest.raises(ValidationError, match="camera"):
        load_settings()


def test_nested_settings_come_from_double_underscore_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CS_KIOSK_KIOSK_ID", KIOSK)
    monkeypatch.setenv("CS_KIOSK_PINS__MOCK", "true")
    monkeypatch.setenv("CS_KIOSK_PINS__BUZZER", "18")

    settings = load_settings()

    assert settings.pins.mock is True
    assert settings.pins.buzzer == 18


def test_the_broker_password_comes_from_systemd_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "CS_KIOSK_MQTT_PASSWORD").write_text("hunter2")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("CS_KIOSK_KIOSK_ID", KIOSK)

    settings = load_settings()

    assert settings.mqtt_password is not None
    assert settings.mqtt_password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)


# -- cs-kiosk --validate-config ------------------------------------------------------------


@pytest.mark.usefixtures("root_logging")
def test_validate_config_prints_the_settings_with_the_password_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CS_KIOSK_KIOSK_ID", KIOSK)
    monkeypatch.setenv("CS_KIOSK_MQTT_USERNAME", "kiosk-a1")
    monkeypatch.setenv("CS_KIOSK_MQTT_PASSWORD", "hunter2")
    monkeypatch.setenv("CS_KIOSK_CAMERA", '{"type":"scene","fps":15}')

    code = service.main(["--validate-config"])

    out = capsys.readouterr()
    assert code == 0
    assert "hunter2" not in out.out + out.err
    shown = json.loads(out.out)
    assert shown["kiosk_id"] == KIOSK
    assert shown["mqtt_username"] == "kiosk-a1"
    assert shown["mqtt_password"] == "**********"
    assert shown["camera"] == {"type": "scene", "fps": 15.0, "size": [640, 480]}


INVALID_ENVIRONMENTS = {
    "bad-kiosk-id": {"CS_KIOSK_KIOSK_ID": "kiosk a1"},
    "unknown-camera": {"CS_KIOSK_KIOSK_ID": KIOSK, "CS_KIOSK_CAMERA": '{"type":"webcam"}'},
    "typo-in-pins": {"CS_KIOSK_KIOSK_ID": KIOSK, "CS_KIOSK_PINS__GRENE": "27"},
    "bad-port": {"CS_KIOSK_KIOSK_ID": KIOSK, "CS_KIOSK_MQTT_PORT": "not-a-port"},
}


@pytest.mark.usefixtures("root_logging")
@pytest.mark.parametrize("env", INVALID_ENVIRONMENTS.values(), ids=INVALID_ENVIRONMENTS.keys())
def test_validate_config_exits_2_on_invalid_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    code = service.main(["--validate-config"])

    out = capsys.readouterr()
    assert code == 2
    assert out.out == ""
    assert "invalid kiosk configuration" in out.err


@pytest.mark.usefixtures("root_logging")
@pytest.mark.parametrize(
    "env",
    [pytest.param(env, id=name) for name, env in INVALID_ENVIRONMENTS.items()],
)
def test_invalid_settings_never_print_the_broker_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> None:
    # The error goes to journald, which admins and support read: no secret may be in it.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CS_KIOSK_MQTT_HOST", "broker.local")
    monkeypatch.setenv("CS_KIOSK_MQTT_PASSWORD", "hunter2")

    assert service.main(["--validate-config"]) == 2

    out = capsys.readouterr()
    assert "hunter2" not in out.out + out.err


# -- devices built from settings ---------------------------------------------------------


@pytest.fixture
def factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The MockFactory build_devices makes, so the test can read the pins it drives."""
    factory = MockFactory()
    monkeypatch.setattr("gpiozero.pins.mock.MockFactory", lambda: factory)
    yield factory
    factory.reset()


def test_mock_pins_and_a_scene_camera_build_working_devices(factory: Any) -> None:
    pins = PinSettings(red=5, green=6, blue=13, buzzer=19, button=26, mock=True)
    settings = KioskSettings(kiosk_id=KIOSK, camera=SceneCameraSettings(fps=15), pins=pins)

    devices = build_devices(settings)
    try:
        devices.lights.set(Rgb(red=True, blue=True))
        assert [bool(factory.pin(n).state) for n in (5, 6, 13)] == [True, False, True]
        devices.buzzer.set(True)
        assert factory.pin(19).state

        presses: list[int] = []
        devices.button.on_press(lambda: presses.append(1))
        factory.pin(26).drive_low()
        assert presses == [1]

        assert isinstance(devices.decoder, ScanPipeline)
        assert isinstance(devices.camera, SceneCamera)
        devices.camera.start()
        devices.camera.show(LABEL, frames=1)
        assert devices.decoder.decode(devices.camera.read(1.0)) == [LABEL]
        devices.camera.stop()
    finally:
        devices.lights.close()
        devices.buzzer.close()
        devices.button.close()

    assert [bool(factory.pin(n).state) for n in (5, 6, 13, 19)] == [False] * 4


def test_devices_can_be_rebuilt_after_closing(factory: Any) -> None:
    # A restarted service must find its pins free again.
    settings = KioskSettings(
        kiosk_id=KIOSK, camera=SceneCameraSettings(), pins=PinSettings(mock=True)
    )
    for _ in range(2):
        devices = build_devices(settings)
        devices.lights.set(Rgb(green=True))
        assert factory.pin(settings.pins.green).state
        devices.lights.close()
        devices.buzzer.close()
        devices.button.close()
