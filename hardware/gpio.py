"""The gpiozero backends for the kiosk's LEDs, buzzer and button; the only gpiozero importer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from gpiozero import LED
from gpiozero import Button as _GpioZeroButton
from gpiozero import Buzzer as _GpioZeroBuzzer
from gpiozero.exc import GPIOZeroError

from hardware.errors import HardwareError
from hardware.interfaces import Rgb

__all__ = ["GpioButton", "GpioBuzzer", "GpioLights", "Pin"]

logger = logging.getLogger(__name__)

# A GPIO number (17) or any name gpiozero accepts ("GPIO17", "BOARD11").
Pin = int | str

# Pins are switched directly with on()/off(), never with blink()/beep(): those run
# gpiozero background threads on the wall clock, while the kiosk times its patterns
# with its own injectable clock.


class GpioLights:
    """Three LEDs (red, green, blue) on GPIO pins."""

    def __init__(
        self,
        red: Pin,
        green: Pin,
        blue: Pin,
        *,
        active_high: bool = True,
        pin_factory: Any = None,
    ) -> None:
        leds: list[Any] = []
        try:
            for pin in (red, green, blue):
                leds.append(LED(pin, active_high=active_high, pin_factory=pin_factory))
        except GPIOZeroError as exc:
            # Release what was claimed, so a retry does not find its own pins busy.
            for led in leds:
                led.close()
            raise HardwareError(f"cannot open LED pins {red}, {green}, {blue}: {exc}") from exc
        self._leds = leds
        self._lock = threading.Lock()
        self._closed = False

    def set(self, rgb: Rgb) -> None:
        """Switch each LED on or off to match ``rgb``."""
        with self._lock:
            if self._closed:
                raise HardwareError("lights are closed")
            for led, on in zip(self._leds, rgb, strict=True):
                if on:
                    led.on()
                else:
                    led.off()

    def close(self) -> None:
        """Switch the LEDs off and release their pins. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for led in self._leds:
                led.off()
                led.close()


class GpioBuzzer:
    """An active buzzer on a GPIO pin."""

    def __init__(self, pin: Pin, *, active_high: bool = True, pin_factory: Any = None) -> None:
        try:
            self._buzzer: Any = _GpioZeroBuzzer(
                pin, active_high=active_high, pin_factory=pin_factory
            )
        except GPIOZeroError as exc:
            raise HardwareError(f"cannot open buzzer pin {pin}: {exc}") from exc
        self._lock = threading.Lock()
        self._closed = False

    def set(self, on: bool) -> None:
        """Sound (True) or silence (False) the buzzer."""
        with self._lock:
            if self._closed:
                raise HardwareError("buzzer is closed")
            if on:
                self._buzzer.on()
            else:
                self._buzzer.off()

    def close(self) -> None:
        """Silence the buzzer and release its pin. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._buzzer.off()
            self._buzzer.close()


class GpioButton:
    """A push button from a GPIO pin to ground (the internal pull-up holds it high)."""

    def __init__(
        self,
        pin: Pin,
        *,
        pull_up: bool = True,
        bounce_time: float | None = 0.05,
        pin_factory: Any = None,
    ) -> None:
        try:
            self._button: Any = _GpioZeroButton(
                pin, pull_up=pull_up, bounce_time=bounce_time, pin_factory=pin_factory
            )
        except GPIOZeroError as exc:
            raise HardwareError(f"cannot open button pin {pin}: {exc}") from exc
        self._callback: Callable[[], None] | None = None
        # Bridged through a method, so on_press() can swap or drop the callback without
        # touching gpiozero's handler from another thread.
        self._button.when_pressed = self._pressed

    def on_press(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` (on gpiozero's thread) each time the button is pressed."""
        self._callback = callback

    def _pressed(self) -> None:
        callback = self._callback
        if callback is None:
            return
        try:
            callback()
        except Exception:
            # Raised on gpiozero's event thread it would be lost or end that thread;
            # log it and keep the button alive.
            logger.exception("button callback failed")

    def close(self) -> None:
        """Release the pin; no more presses are reported. Safe to call twice."""
        self._callback = None
        self._button.close()
