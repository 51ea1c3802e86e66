"""The Protocols every hardware backend implements; kiosk code depends only on these."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

# A greyscale (luminance) frame, height by width, uint8. On a Pi this is the Y plane of
# the low-resolution YUV420 stream, used as-is with no colour conversion.
Frame = npt.NDArray[np.uint8]


class Rgb(NamedTuple):
    """On/off state of the three feedback LEDs."""

    red: bool = False
    green: bool = False
    blue: bool = False


OFF = Rgb()


class Camera(Protocol):
    """A source of luminance frames. Synchronous: the kiosk calls it from a thread."""

    def start(self) -> None:
        """Open the device; raises CameraError if it cannot."""

    def read(self, timeout: float) -> Frame:
        """The next frame; raises CameraError if none arrives within ``timeout`` s."""

    def stop(self) -> None:
        """Release the device. Safe to call twice."""


class Decoder(Protocol):
    """Finds QR codes in a frame. Only QR: other symbologies are never reported."""

    name: str

    def decode(self, frame: Frame) -> list[str]:
        """The texts of every QR code found in ``frame`` (possibly none)."""


class Lights(Protocol):
    """The kiosk's feedback LEDs."""

    def set(self, rgb: Rgb) -> None:
        """Switch the LEDs to ``rgb`` at once."""

    def close(self) -> None:
        """Switch off and release the pins."""


class Buzzer(Protocol):
    """The kiosk's buzzer."""

    def set(self, on: bool) -> None:
        """Sound (True) or silence (False) the buzzer at once."""

    def close(self) -> None:
        """Silence and release the pin."""


class Button(Protocol):
    """The member's "done" button. The callback runs on a hardware thread."""

    def on_press(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` (from any thread) each time the button is pressed."""

    def close(self) -> None:
        """Release the pin."""
