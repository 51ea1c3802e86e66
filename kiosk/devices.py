"""Builds a kiosk's devices from its settings; the only kiosk module that picks backends."""

from __future__ import annotations

from typing import Any

from hardware.decoders import make_decoder
from hardware.interfaces import Camera
from kiosk.parts import Devices, Outputs
from kiosk.settings import (
    CameraSettings,
    KioskSettings,
    PiCameraSettings,
    PinSettings,
    ReplayCameraSettings,
)


class DeviceMaker:
    """Makes cameras and output devices; the kiosk keeps it to rebuild them on new config."""

    def __init__(self, settings: KioskSettings, *, pin_factory: Any = None) -> None:
        self._factory: Any = pin_factory
        if pin_factory is None and settings.pins.mock:
            from gpiozero.pins.mock import MockFactory

            # One factory for the kiosk's life: rebuilt devices land on the same mock pins.
            self._factory = MockFactory()

    def camera(self, settings: CameraSettings) -> Camera:
        """The configured camera backend (not started)."""
        return build_camera(settings)

    def outputs(self, pins: PinSettings) -> Outputs:
        """LEDs, buzzer and button on ``pins``; HardwareError if a pin cannot be had."""
        from hardware.gpio import GpioButton, GpioBuzzer, GpioLights

        lights = GpioLights(pins.red, pins.green, pins.blue, pin_factory=self._factory)
        try:
            buzzer = GpioBuzzer(pins.buzzer, pin_factory=self._factory)
            try:
                button = GpioButton(pins.button, pin_factory=self._factory)
            except Exception:
                buzzer.close()
                raise
        except Exception:
            # Release what was claimed, so the pins that worked can be taken back.
            lights.close()
            raise
        return Outputs(lights, buzzer, button)


def build_devices(settings: KioskSettings, maker: DeviceMaker | None = None) -> Devices:
    """Camera, decoder, LEDs, buzzer and button as configured."""
    maker = maker or DeviceMaker(settings)
    outputs = maker.outputs(settings.pins)
    return Devices(
        camera=maker.camera(settings.camera),
        decoder=make_decoder(settings.decoder),
        lights=outputs.lights,
        buzzer=outputs.buzzer,
        button=outputs.button,
    )


def build_camera(camera: CameraSettings) -> Camera:
    """The configured camera backend."""
    if isinstance(camera, PiCameraSettings):
        from hardware.picamera import PiCamera

        return PiCamera(
            lores_size=camera.lores_size,
            main_size=camera.main_size,
            fps=camera.fps,
            autofocus=camera.autofocus,
            exposure_us=camera.exposure_us,
            focus=camera.focus,
        )
    if isinstance(camera, ReplayCameraSettings):
        from hardware.replay import ReplayCamera

        return ReplayCamera(camera.paths, fps=camera.fps, loop=camera.loop)
    from hardware.replay import SceneCamera

    width, height = camera.size
    return SceneCamera(fps=camera.fps, width=width, height=height)
