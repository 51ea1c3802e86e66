"""Central's configuration laid over the kiosk's own settings: what the kiosk should run."""

from __future__ import annotations

from typing import Any

from broker.messages import CameraConfig, FeedbackConfig, PinConfig, Sound
from kiosk.settings import (
    CameraSettings,
    PiCameraSettings,
    PinSettings,
    SceneCameraSettings,
)


def camera_settings(local: CameraSettings, config: CameraConfig | None) -> CameraSettings:
    """``local`` with every setting central gave that this kind of camera understands.

    A replay camera takes only the frame rate; a scene camera the size too; the Pi camera
    everything, exposure and focus included.
    """
    if config is None:
        return local
    update: dict[str, Any] = {}
    if config.fps is not None:
        update["fps"] = config.fps
    if isinstance(local, PiCameraSettings):
        if config.size is not None:
            update["lores_size"] = config.size
            # libcamera wants the main stream at least as large as lores.
            main = local.main_size
            update["main_size"] = (max(main[0], config.size[0]), max(main[1], config.size[1]))
        if config.exposure_us is not None:
            update["exposure_us"] = config.exposure_us
        if config.focus is not None:
            update["focus"] = config.focus
    elif isinstance(local, SceneCameraSettings) and config.size is not None:
        update["size"] = config.size
    if not update:
        return local
    return type(local).model_validate({**local.model_dump(), **update})


def pin_settings(local: PinSettings, config: PinConfig | None) -> PinSettings:
    """``local`` with the pins central gave."""
    if config is None:
        return local
    given = config.model_dump(exclude_none=True)
    if not given:
        return local
    return PinSettings.model_validate({**local.model_dump(), **given})


def sound(local: Sound, config: FeedbackConfig | None) -> Sound:
    """When the buzzer sounds: central's word if it gave one."""
    if config is None or config.sound is None:
        return local
    return config.sound
