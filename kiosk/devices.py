"""Builds a kiosk's devices from its settings; the only kiosk module that picks backends."""

from __future__ import annotations

from hardware.decoders import make_decoder
from hardware.interfaces import Camera
from kiosk.core import Devices
from kiosk.settings import KioskSettings, PiCameraSettings, ReplayCameraSettings


def build_devices(settings: KioskSettings) -> Devices:
    """Camera, decoder, LEDs, buzzer and button as configured."""
    from hardware.gpio import GpioButton, GpioBuzzer, GpioLights

    factory = None
    if settings.pins.mock:
        from gpiozero.pins.mock import MockFactory

        factory = MockFactory()
    pins = settings.pins
    return Devices(
        camera=build_camera(settings),
        decoder=make_decoder(settings.decoder),
        lights=GpioLights(pins.red, pins.green, pins.blue, pin_factory=factory),
        buzzer=GpioBuzzer(pins.buzzer, pin_factory=factory),
        button=GpioButton(pins.button, pin_factory=factory),
    )


def build_camera(settings: KioskSettings) -> Camera:
    """The configured camera backend."""
    camera = settings.camera
    if isinstance(camera, PiCameraSettings):
        from hardware.picamera import PiCamera

        return PiCamera(
            lores_size=camera.lores_size,
            main_size=camera.main_size,
            fps=camera.fps,
            autofocus=camera.autofocus,
        )
    if isinstance(camera, ReplayCameraSettings):
        from hardware.replay import ReplayCamera

        return ReplayCamera(camera.paths, fps=camera.fps, loop=camera.loop)
    from hardware.replay import SceneCamera

    return SceneCamera(fps=camera.fps)
