"""Central's config over the kiosk's own settings; frame rate and decode time for the status."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.messages import CameraConfig, FeedbackConfig, PinConfig, Sound
from kiosk.config import camera_settings, pin_settings, sound
from kiosk.health import FrameStats
from kiosk.settings import (
    PiCameraSettings,
    PinSettings,
    ReplayCameraSettings,
    SceneCameraSettings,
)

EVERYTHING = CameraConfig(size=(1640, 1232), fps=15, exposure_us=2000, focus=4.0)


def test_the_pi_camera_takes_every_camera_setting() -> None:
    local = PiCameraSettings()

    wanted = camera_settings(local, EVERYTHING)

    assert isinstance(wanted, PiCameraSettings)
    assert wanted.lores_size == (1640, 1232)
    # libcamera refuses a lores stream larger than main: main grows to fit.
    assert wanted.main_size == (1640, 1232)
    assert (wanted.fps, wanted.exposure_us, wanted.focus) == (15, 2000, 4.0)


def test_unset_settings_keep_the_kiosks_own() -> None:
    local = PiCameraSettings(fps=20, exposure_us=500)

    assert camera_settings(local, CameraConfig(focus=1.0)) == PiCameraSettings(
        fps=20, exposure_us=500, focus=1.0
    )
    assert camera_settings(local, None) is local
    assert camera_settings(local, CameraConfig()) is local


def test_cameras_without_optics_take_what_they_can() -> None:
    scene = camera_settings(SceneCameraSettings(), EVERYTHING)
    assert scene == SceneCameraSettings(fps=15, size=(1640, 1232))

    replay = ReplayCameraSettings(paths=[Path("a.png")])
    assert camera_settings(replay, EVERYTHING) == ReplayCameraSettings(
        paths=[Path("a.png")], fps=15
    )


def test_pins_given_replace_only_those_pins() -> None:
    local = PinSettings(mock=True)

    wanted = pin_settings(local, PinConfig(buzzer=12, button=16))

    assert wanted == PinSettings(mock=True, buzzer=12, button=16)
    assert pin_settings(local, PinConfig()) is local


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, Sound.REFUSALS),
        (FeedbackConfig(), Sound.REFUSALS),
        (FeedbackConfig(sound=Sound.OFF), Sound.OFF),
    ],
)
def test_sound_is_centrals_word_if_it_gave_one(
    config: FeedbackConfig | None, expected: Sound
) -> None:
    assert sound(Sound.REFUSALS, config) is expected


def test_frame_rate_and_median_decode_time() -> None:
    stats = FrameStats(window=10)
    assert (stats.fps(0.0), stats.decode_ms()) == (None, None)

    for index in range(10):  # 20 fps, decodes of 1..10 ms
        stats.frame(index * 0.05, (index + 1) / 1000)

    assert stats.fps(0.45) == 20.0
    assert stats.decode_ms() == 5.5
    # The camera stops delivering: the rate falls instead of freezing at its last value.
    assert stats.fps(4.5) == 2.0

    stats.reset()
    assert stats.fps(5.0) is None
