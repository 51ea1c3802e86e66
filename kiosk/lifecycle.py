"""What the kiosk tells systemd: ready once it scans and is online, alive while frames flow."""

from __future__ import annotations

import sdnotify

from kiosk.clock import Clock


class Lifecycle:
    """systemd's notify protocol for one kiosk; every call is a no-op outside systemd."""

    def __init__(self, kiosk_id: str, clock: Clock) -> None:
        self._kiosk_id = kiosk_id
        self._clock = clock
        self._systemd = sdnotify.SystemdNotifier()
        self._camera_started = False
        self._online = False
        self._announced = False
        self._last_ping = 0.0

    def camera_started(self) -> None:
        """The camera opened at start."""
        self._camera_started = True
        self._maybe_ready()

    def link(self, up: bool) -> None:
        """The broker connection came up (True) or went down (False)."""
        self._online = up
        self._maybe_ready()

    def frame_read(self) -> None:
        """A frame was read: feed the watchdog (at most once a second).

        Called from the scan loop itself: if frames stop being read, systemd notices.
        """
        now = self._clock.monotonic()
        if now - self._last_ping >= 1.0:
            self._last_ping = now
            self._systemd.notify("WATCHDOG=1")

    def stopping(self) -> None:
        """The kiosk is shutting down."""
        self._systemd.notify("STOPPING=1")

    def _maybe_ready(self) -> None:
        if self._announced or not (self._camera_started and self._online):
            return
        self._announced = True
        self._systemd.notify("READY=1")
        self._systemd.notify(f"STATUS=kiosk {self._kiosk_id} scanning")
