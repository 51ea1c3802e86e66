"""The walk-up state machine: idle → session → idle, returns from idle, timeouts, offline.

After a return the button means something else for a few seconds: "something is wrong
with what I just returned" (a :class:`ProblemReport`), since there is no session to end.

Driven by named inputs only (``on_code``, ``on_done``, ``on_verdict``, ``on_link``,
``on_camera``, ``on_config``, ``tick``); it never touches devices or the network.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from broker.codes import CodeKind, classify_code
from broker.messages import CodeScan, KioskConfig, ProblemReport, Reason, SessionDone, Verdict
from kiosk.clock import Clock
from kiosk.feedback import Signal


class Mode(StrEnum):
    """Whether a member has a session open here."""

    IDLE = "idle"
    SESSION = "session"


class Action(StrEnum):
    """What to do with a code the camera just saw."""

    SEND = "send"  # publish now, wait for the verdict
    QUEUE = "queue"  # offline return: keep in the outbox, confirm as queued
    REFUSE = "refuse"  # answer locally, send nothing


@dataclass(frozen=True, slots=True)
class Decision:
    """The state machine's answer to one fresh code."""

    action: Action
    event: CodeScan | None
    signal: Signal | None


_RETURNS = frozenset({Reason.RETURNED, Reason.RETURNED_TO_HOLD})


class Walkup:
    """Knows what a member at this kiosk is doing; central has the final word via verdicts."""

    def __init__(
        self,
        kiosk_id: str,
        clock: Clock,
        session_timeout_s: float = 60.0,
        inspect_window_s: float = 0.0,
    ) -> None:
        self.kiosk_id = kiosk_id
        self.inspect_window_s = inspect_window_s
        # The return a press would report on, and until when (monotonic).
        self._inspecting: tuple[str, float] | None = None
        self._clock = clock
        self.session_timeout_s = session_timeout_s
        self.mode = Mode.IDLE
        self.member_name: str | None = None
        self._deadline = 0.0
        self.online = False
        self.checkout_enabled = True
        self.camera_ok = True

    def _event(self, code: str, *, queued: bool = False) -> CodeScan:
        return CodeScan(
            event_id=uuid.uuid4().hex,
            kiosk_id=self.kiosk_id,
            code=code,
            scanned_at=self._clock.wall(),
            queued=queued,
        )

    def on_code(self, code: str) -> Decision:
        """Decide what a freshly seen code means here and now."""
        self._inspecting = None  # the next member's scan: the returned item has left
        kind = classify_code(code)
        if kind is None or kind is CodeKind.ENROL:
            # Not one of our codes (a poster, a phone's screen): say so without bothering
            # central.
            return Decision(Action.REFUSE, None, Signal.REFUSED_CODE)
        if self.online:
            return Decision(Action.SEND, self._event(code), None)
        if kind is CodeKind.LABEL and self.mode is Mode.IDLE:
            return Decision(Action.QUEUE, self._event(code, queued=True), Signal.QUEUED)
        # Passes and checkouts need central's answer; never promise one offline.
        return Decision(Action.REFUSE, None, Signal.REFUSED_OFFLINE)

    @property
    def inspecting(self) -> bool:
        """Whether a press of the button now reports a problem with the item just returned."""
        return self._inspecting is not None and self._clock.monotonic() < self._inspecting[1]

    def forget_return(self) -> None:
        """Nobody stands at the kiosk for the return just answered (it was queued): the
        button does not report on it."""
        self._inspecting = None

    def on_done(self) -> SessionDone | ProblemReport | None:
        """The button: end the session here (central is told, the kiosk goes idle at once),
        or, just after a return, report a problem with the item."""
        if self.mode is not Mode.SESSION:
            if not self.inspecting:
                return None
            assert self._inspecting is not None
            return_event_id, self._inspecting = self._inspecting[0], None
            return ProblemReport(
                event_id=uuid.uuid4().hex,
                kiosk_id=self.kiosk_id,
                scanned_at=self._clock.wall(),
                return_event_id=return_event_id,
            )
        self._end()
        return SessionDone(
            event_id=uuid.uuid4().hex, kiosk_id=self.kiosk_id, scanned_at=self._clock.wall()
        )

    def on_verdict(self, verdict: Verdict) -> None:
        """Follow central: it says whether a session is open here after this event."""
        if verdict.reason in _RETURNS and not verdict.session_open and self.inspect_window_s > 0:
            deadline = self._clock.monotonic() + self.inspect_window_s
            self._inspecting = (verdict.event_id, deadline)
        if verdict.session_open:
            self.mode = Mode.SESSION
            self.member_name = verdict.member_name or self.member_name
            self._deadline = self._clock.monotonic() + self.session_timeout_s
        else:
            self._end()

    def on_link(self, up: bool) -> None:
        """The broker connection came up (True) or went down (False)."""
        self.online = up

    def on_camera(self, ok: bool) -> None:
        """The camera failed (False) or delivers frames again (True)."""
        self.camera_ok = ok

    def on_config(self, config: KioskConfig) -> None:
        """Central's configuration for this kiosk: session timeout, checkout on or off."""
        self.session_timeout_s = config.session_timeout_s
        self.checkout_enabled = config.checkout_enabled

    def tick(self) -> bool:
        """End an idle session whose time is up; whether it just ended."""
        if self.mode is Mode.SESSION and self._clock.monotonic() >= self._deadline:
            self._end()
            return True
        return False

    def _end(self) -> None:
        self.mode = Mode.IDLE
        self.member_name = None

    def steady(self) -> Signal:
        """The background LED state for where things stand."""
        if not self.camera_ok:
            return Signal.CAMERA_FAULT
        if not self.online:
            return Signal.OFFLINE
        if self.mode is Mode.SESSION:
            return Signal.SESSION
        return Signal.IDLE if self.checkout_enabled else Signal.CHECKOUT_OFF
