"""Fake lights, buzzer and button that record what the kiosk did, for tests and demos."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from hardware.errors import HardwareError
from hardware.interfaces import OFF, Rgb

__all__ = ["ManualButton", "RecordingBuzzer", "RecordingLights"]


class RecordingLights:
    """Lights that record every ``set`` as (time on the injected clock, state)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state = OFF
        self._events: list[tuple[float, Rgb]] = []
        self._closed = False

    @property
    def state(self) -> Rgb:
        """What the LEDs show now."""
        with self._lock:
            return self._state

    @property
    def events(self) -> list[tuple[float, Rgb]]:
        """Every state set so far, with when, oldest first (a copy)."""
        with self._lock:
            return list(self._events)

    @property
    def states(self) -> list[Rgb]:
        """Every state set so far, oldest first, without the times."""
        return [rgb for _, rgb in self.events]

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has been called."""
        with self._lock:
            return self._closed

    def set(self, rgb: Rgb) -> None:
        """Record ``rgb`` as the LEDs' new state; HardwareError once closed, as on a Pi."""
        with self._lock:
            if self._closed:
                raise HardwareError("lights are closed")
            self._state = rgb
            self._events.append((self._clock(), rgb))

    def close(self) -> None:
        """Switch off (recorded) and refuse further use. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._state = OFF
            self._events.append((self._clock(), OFF))


class RecordingBuzzer:
    """A buzzer that records every ``set`` as (time on the injected clock, on)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._on = False
        self._events: list[tuple[float, bool]] = []
        self._closed = False

    @property
    def on(self) -> bool:
        """Whether the buzzer is sounding now."""
        with self._lock:
            return self._on

    @property
    def events(self) -> list[tuple[float, bool]]:
        """Every state set so far, with when, oldest first (a copy)."""
        with self._lock:
            return list(self._events)

    @property
    def states(self) -> list[bool]:
        """Every state set so far, oldest first, without the times."""
        return [on for _, on in self.events]

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has been called."""
        with self._lock:
            return self._closed

    def set(self, on: bool) -> None:
        """Record the buzzer sounding or silent; HardwareError once closed, as on a Pi."""
        with self._lock:
            if self._closed:
                raise HardwareError("buzzer is closed")
            self._on = on
            self._events.append((self._clock(), on))

    def close(self) -> None:
        """Silence (recorded) and refuse further use. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._on = False
            self._events.append((self._clock(), False))


class ManualButton:
    """A button pressed from code: ``press()`` runs the callback on the caller's thread."""

    def __init__(self) -> None:
        self._callback: Callable[[], None] | None = None
        self._closed = False
        self._presses = 0

    @property
    def presses(self) -> int:
        """How many presses were delivered to a callback."""
        return self._presses

    def on_press(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` each time ``press()`` is called (None: stop calling)."""
        self._callback = callback

    def press(self) -> bool:
        """Press the button; whether a callback ran (not once closed, as on a Pi)."""
        callback = self._callback
        if self._closed or callback is None:
            return False
        self._presses += 1
        callback()
        return True

    def close(self) -> None:
        """Release the button: later presses are ignored."""
        self._closed = True
        self._callback = None
