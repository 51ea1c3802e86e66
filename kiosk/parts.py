"""The hardware one kiosk drives, and the maker that gives it new parts on new settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from hardware.interfaces import Button, Buzzer, Camera, Decoder, Lights
from kiosk.settings import CameraSettings, PinSettings


@dataclass
class Devices:
    """The hardware one kiosk drives.

    The camera and decoder are handed to the kiosk's scan source, which owns them from
    then on (``Kiosk.scans.camera`` is the camera in use after a reconfiguration).
    """

    camera: Camera
    decoder: Decoder
    lights: Lights
    buzzer: Buzzer
    button: Button


class Outputs(NamedTuple):
    """The devices on GPIO pins, rebuilt together when the pins change."""

    lights: Lights
    buzzer: Buzzer
    button: Button


class Rebuild(Protocol):
    """Makes new devices when central changes the camera settings or the pins."""

    def camera(self, settings: CameraSettings) -> Camera:
        """A camera (not started) with ``settings``."""

    def outputs(self, pins: PinSettings) -> Outputs:
        """LEDs, buzzer and button on ``pins``; HardwareError if a pin cannot be had."""
