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


class Capture(NamedTuple):
    """One camera request: the frame scanned every time, and the same instant at full size.

    ``full`` is the luminance of the camera's full-resolution stream taken by the same
    request (picamera2's ``main`` next to ``lores``), or None when the camera has only one
    stream. Both show the same field of view, so a region of ``frame`` maps onto ``full``
    by the ratio of their sizes.
    """

    frame: Frame
    full: Frame | None = None


class Camera(Protocol):
    """A source of luminance frames. Synchronous: the kiosk calls it from a thread."""

    def start(self) -> None:
        """Open the device; raises CameraError if it cannot."""

    def read(self, timeout: float) -> Frame:
        """The next frame; raises CameraError if none arrives within ``timeout`` s."""

    def capture(self, timeout: float) -> Capture:
        """The next frame with its full-resolution twin if the camera has one; as ``read``."""

    def stop(self) -> None:
        """Release the device. Safe to call twice."""


class Decoder(Protocol):
    """Finds QR codes in a frame. Only QR: other symbologies are never reported."""

    name: str

    def decode(self, frame: Frame) -> list[str]:
        """The texts of every QR code found in ``frame`` (possibly none)."""

    def scan(self, capture: Capture) -> list[str]:
        """The texts of every QR code in ``capture``, using its full-size frame if it helps."""


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
