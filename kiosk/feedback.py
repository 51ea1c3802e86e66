"""Every LED and buzzer pattern the kiosk shows, in one table, and the player that shows them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from broker.messages import Reason, Sound
from hardware.interfaces import Buzzer, Lights, Rgb
from kiosk.clock import Clock

R, G, B = Rgb(red=True), Rgb(green=True), Rgb(blue=True)
AMBER, CYAN, MAGENTA, WHITE, DARK = (
    Rgb(True, True, False),
    Rgb(False, True, True),
    Rgb(True, False, True),
    Rgb(True, True, True),
    Rgb(),
)


class Signal(StrEnum):
    """What the kiosk is telling the member (or the admin looking for it)."""

    # Steady states, shown until something else happens.
    IDLE = "idle"
    SESSION = "session"
    OFFLINE = "offline"
    CAMERA_FAULT = "camera-fault"
    CHECKOUT_OFF = "checkout-off"
    # Moments, played once and then back to the steady state.
    SESSION_OPENED = "session-opened"
    CHECKED_OUT = "checked-out"
    RETURNED = "returned"
    SESSION_CLOSED = "session-closed"
    QUEUED = "queued-offline"
    REFUSED_CODE = "refused-code"
    REFUSED_USED = "refused-pass-used"
    REFUSED_MEMBER = "refused-member"
    REFUSED_ITEM = "refused-item"
    REFUSED_SHELF = "refused-wrong-shelf"
    REFUSED_NO_SESSION = "refused-no-session"
    REFUSED_OFFLINE = "refused-offline"
    REFUSED_DISABLED = "refused-checkout-off"
    REFUSED_ABUSE = "refused-blocked"
    IDENTIFY = "identify"
    # Circulation (docs/circulation.md).
    HOLD_PLACED = "hold-placed"
    RENEWED = "renewed"
    HOLD_SHELF = "hold-shelf"
    INSPECT = "inspect"  # after a return: press the button if something is wrong
    PROBLEM_NOTED = "problem-noted"
    REFUSED_RESERVED = "refused-reserved"
    REFUSED_HOLD_WAITING = "refused-hold-waiting"
    REFUSED_RENEWAL_LIMIT = "refused-renewal-limit"
    REFUSED_TOO_OVERDUE = "refused-too-overdue"
    REFUSED_TRAINING = "refused-needs-training"
    REFUSED_AGREEMENT = "refused-needs-agreement"
    REFUSED_OVERDUE_BLOCK = "refused-overdue-block"


@dataclass(frozen=True, slots=True)
class Step:
    """LEDs and buzzer held for ``seconds``."""

    lights: Rgb
    buzzer: bool
    seconds: float


@dataclass(frozen=True, slots=True)
class Pattern:
    """A named sequence of steps; steady patterns have one step held indefinitely."""

    signal: Signal
    steps: tuple[Step, ...]
    describe: str


def _beeps(
    colour: Rgb, count: int, on: float, off: float, *, buzz: bool = True
) -> tuple[Step, ...]:
    steps: list[Step] = []
    for _ in range(count):
        steps += [Step(colour, buzz, on), Step(DARK, False, off)]
    return tuple(steps)


# The one table. Each pattern differs from every other in colour, rhythm or sound, so a
# member (or an admin watching from across the room) can tell them apart.
PATTERNS: dict[Signal, Pattern] = {
    p.signal: p
    for p in (
        Pattern(Signal.IDLE, (Step(B, False, 0),), "blue: show your pass or return an item"),
        Pattern(Signal.SESSION, (Step(G, False, 0),), "green: scan items, press done to finish"),
        Pattern(Signal.OFFLINE, (Step(AMBER, False, 0),), "amber: offline, returns only"),
        Pattern(Signal.CAMERA_FAULT, (Step(R, False, 0),), "red: camera fault"),
        Pattern(Signal.CHECKOUT_OFF, (Step(MAGENTA, False, 0),), "magenta: returns only"),
        Pattern(Signal.SESSION_OPENED, _beeps(G, 2, 0.12, 0.08), "two green blinks, two beeps"),
        Pattern(
            Signal.CHECKED_OUT, (Step(G, True, 0.15), Step(G, False, 0.45)), "long green, one beep"
        ),
        Pattern(
            Signal.RETURNED,
            (Step(CYAN, True, 0.15), Step(CYAN, False, 0.45)),
            "long cyan, one beep",
        ),
        Pattern(Signal.SESSION_CLOSED, _beeps(G, 3, 0.1, 0.1, buzz=False), "three green blinks"),
        Pattern(
            Signal.QUEUED,
            (Step(AMBER, True, 0.15), Step(CYAN, False, 0.45)),
            "amber beep then cyan: return saved, sent when back online",
        ),
        Pattern(
            Signal.REFUSED_CODE,
            (Step(R, True, 0.6), Step(DARK, False, 0.1)),
            "long red, long buzz: code not valid",
        ),
        Pattern(
            Signal.REFUSED_USED, _beeps(R, 3, 0.1, 0.1), "three red blinks and beeps: pass used"
        ),
        Pattern(
            Signal.REFUSED_MEMBER, _beeps(MAGENTA, 2, 0.25, 0.1), "two magenta beeps: see the desk"
        ),
        Pattern(
            Signal.REFUSED_ITEM,
            (Step(R, True, 0.2), Step(AMBER, False, 0.4)),
            "red beep then amber: item not available",
        ),
        Pattern(
            Signal.REFUSED_SHELF,
            (Step(R, True, 0.2), Step(CYAN, False, 0.4)),
            "red beep then cyan: return it at its own shelf or the desk",
        ),
        Pattern(
            Signal.REFUSED_NO_SESSION,
            (
                Step(B, True, 0.2),
                Step(DARK, False, 0.1),
                Step(B, True, 0.2),
                Step(DARK, False, 0.1),
            ),
            "two blue beeps: show your pass first",
        ),
        Pattern(
            Signal.REFUSED_OFFLINE,
            (Step(AMBER, True, 0.5), Step(R, False, 0.3)),
            "amber buzz then red: checkout needs the network",
        ),
        Pattern(
            Signal.REFUSED_DISABLED,
            (Step(MAGENTA, True, 0.5), Step(DARK, False, 0.1)),
            "magenta buzz: checkout switched off",
        ),
        Pattern(
            Signal.REFUSED_ABUSE, _beeps(R, 5, 0.05, 0.05), "rapid red: kiosk blocked or slowed"
        ),
        Pattern(
            Signal.HOLD_PLACED,
            (Step(G, True, 0.15), Step(AMBER, False, 0.45)),
            "green beep then amber: you are on its waitlist",
        ),
        Pattern(Signal.RENEWED, _beeps(G, 2, 0.3, 0.1), "two long green beeps: renewed"),
        Pattern(
            Signal.HOLD_SHELF,
            (
                Step(CYAN, True, 0.15),
                Step(B, False, 0.3),
                Step(CYAN, False, 0.3),
                Step(B, False, 0.3),
            ),
            "cyan beep then cyan and blue: returned, put it on the hold shelf",
        ),
        Pattern(
            Signal.INSPECT,
            _beeps(AMBER, 3, 0.3, 0.3, buzz=False),
            "three slow amber blinks: press the button if something is wrong with it",
        ),
        Pattern(
            Signal.PROBLEM_NOTED,
            (Step(CYAN, True, 0.15), Step(MAGENTA, False, 0.45)),
            "cyan beep then magenta: problem noted, thank you",
        ),
        Pattern(
            Signal.REFUSED_RESERVED,
            (Step(R, True, 0.2), Step(B, False, 0.4)),
            "red beep then blue: held or booked for someone else",
        ),
        Pattern(
            Signal.REFUSED_HOLD_WAITING,
            (Step(R, True, 0.2), Step(G, False, 0.4)),
            "red beep then green: someone is waiting for it, not renewed",
        ),
        Pattern(
            Signal.REFUSED_RENEWAL_LIMIT,
            (Step(R, True, 0.2), Step(G, False, 0.2), Step(DARK, False, 0.1), Step(G, False, 0.2)),
            "red beep then two green blinks: renewed as often as allowed",
        ),
        Pattern(
            Signal.REFUSED_TOO_OVERDUE,
            (
                Step(R, True, 0.2),
                Step(AMBER, False, 0.2),
                Step(DARK, False, 0.1),
                Step(AMBER, False, 0.2),
            ),
            "red beep then two amber blinks: too overdue to renew, bring it back",
        ),
        Pattern(
            Signal.REFUSED_TRAINING,
            _beeps(MAGENTA, 3, 0.15, 0.1),
            "three magenta beeps: training needed, see the desk",
        ),
        Pattern(
            Signal.REFUSED_AGREEMENT,
            (Step(MAGENTA, True, 0.5), Step(B, False, 0.3)),
            "magenta buzz then blue: accept the lending agreement first",
        ),
        Pattern(
            Signal.REFUSED_OVERDUE_BLOCK,
            (Step(MAGENTA, True, 0.25), Step(AMBER, False, 0.4)),
            "magenta beep then amber: bring back what is long overdue first",
        ),
        # White is used by nothing else; ten flashes so an admin walking the shelves spots it.
        Pattern(
            Signal.IDENTIFY,
            _beeps(WHITE, 10, 0.2, 0.25),
            "ten white flashes and beeps: here I am",
        ),
    )
}

SIGNAL_FOR_REASON: dict[Reason, Signal] = {
    Reason.SESSION_OPENED: Signal.SESSION_OPENED,
    Reason.CHECKED_OUT: Signal.CHECKED_OUT,
    Reason.RETURNED: Signal.RETURNED,
    Reason.SESSION_CLOSED: Signal.SESSION_CLOSED,
    Reason.EXPIRED: Signal.REFUSED_CODE,
    Reason.BAD_SIGNATURE: Signal.REFUSED_CODE,
    Reason.REVOKED: Signal.REFUSED_CODE,
    Reason.UNKNOWN_CODE: Signal.REFUSED_CODE,
    Reason.MALFORMED: Signal.REFUSED_CODE,
    Reason.ALREADY_USED: Signal.REFUSED_USED,
    Reason.MEMBER_SUSPENDED: Signal.REFUSED_MEMBER,
    Reason.LIMIT_REACHED: Signal.REFUSED_MEMBER,
    Reason.ITEM_UNAVAILABLE: Signal.REFUSED_ITEM,
    Reason.NOT_CHECKED_OUT: Signal.REFUSED_ITEM,
    Reason.WRONG_SHELF: Signal.REFUSED_SHELF,
    Reason.NO_SESSION: Signal.REFUSED_NO_SESSION,
    Reason.RATE_LIMITED: Signal.REFUSED_ABUSE,
    Reason.KIOSK_BLOCKED: Signal.REFUSED_ABUSE,
    Reason.FEATURE_DISABLED: Signal.REFUSED_DISABLED,
    Reason.HOLD_PLACED: Signal.HOLD_PLACED,
    Reason.RENEWED: Signal.RENEWED,
    Reason.RETURNED_TO_HOLD: Signal.HOLD_SHELF,
    Reason.PROBLEM_REPORTED: Signal.PROBLEM_NOTED,
    Reason.RESERVED: Signal.REFUSED_RESERVED,
    Reason.HOLD_WAITING: Signal.REFUSED_HOLD_WAITING,
    Reason.RENEWAL_LIMIT: Signal.REFUSED_RENEWAL_LIMIT,
    Reason.TOO_OVERDUE: Signal.REFUSED_TOO_OVERDUE,
    Reason.NEEDS_TRAINING: Signal.REFUSED_TRAINING,
    Reason.NEEDS_AGREEMENT: Signal.REFUSED_AGREEMENT,
    Reason.OVERDUE_BLOCK: Signal.REFUSED_OVERDUE_BLOCK,
}

STEADY = frozenset(
    {Signal.IDLE, Signal.SESSION, Signal.OFFLINE, Signal.CAMERA_FAULT, Signal.CHECKOUT_OFF}
)

# Silent under Sound.REFUSALS: the member who just succeeded needs no beep to know it.
QUIET_WHEN_REFUSALS_ONLY = frozenset(
    {
        Signal.SESSION_OPENED,
        Signal.CHECKED_OUT,
        Signal.RETURNED,
        Signal.SESSION_CLOSED,
        Signal.QUEUED,
        Signal.HOLD_PLACED,
        Signal.RENEWED,
        Signal.PROBLEM_NOTED,
    }
)


class FeedbackPlayer:
    """Plays moments over a steady background; a new moment cuts the current one short."""

    def __init__(
        self,
        lights: Lights,
        buzzer: Buzzer,
        clock: Clock,
        on_show: Callable[[Pattern], None] | None = None,
    ) -> None:
        self._lights = lights
        self._buzzer = buzzer
        self._clock = clock
        self._steady = PATTERNS[Signal.IDLE]
        self._moment: asyncio.Task[None] | None = None
        self._on_show = on_show
        self.history: list[Signal] = []
        self.sound = Sound.ALL  # when the buzzer may sound (central can change it)

    @property
    def steady(self) -> Signal:
        """The background state shown between moments."""
        return self._steady.signal

    def set_steady(self, signal: Signal) -> None:
        """Change the background; shown at once unless a moment is playing."""
        assert signal in STEADY, signal
        if signal is self._steady.signal:
            return
        self._steady = PATTERNS[signal]
        if self._moment is None or self._moment.done():
            self._show_steady()

    def play(self, signal: Signal) -> asyncio.Task[None]:
        """Play a moment now, then fall back to the steady state."""
        if self._moment is not None and not self._moment.done():
            self._moment.cancel()
        self._moment = asyncio.get_running_loop().create_task(self._run(PATTERNS[signal]))
        return self._moment

    async def _run(self, pattern: Pattern) -> None:
        self._announce(pattern)
        try:
            audible = self._audible(pattern.signal)
            for step in pattern.steps:
                self._lights.set(step.lights)
                self._buzzer.set(step.buzzer and audible)
                await self._clock.sleep(step.seconds)
        finally:
            self._buzzer.set(False)
        self._show_steady()

    def _audible(self, signal: Signal) -> bool:
        if self.sound is Sound.OFF:
            return False
        return self.sound is Sound.ALL or signal not in QUIET_WHEN_REFUSALS_ONLY

    def attach(self, lights: Lights, buzzer: Buzzer) -> None:
        """Drive new devices from now on (the pins changed) and show the steady state."""
        self._lights = lights
        self._buzzer = buzzer
        self._show_steady()

    def _show_steady(self) -> None:
        step = self._steady.steps[0]
        self._lights.set(step.lights)
        self._buzzer.set(step.buzzer)
        self._announce(self._steady)

    def _announce(self, pattern: Pattern) -> None:
        self.history.append(pattern.signal)
        if self._on_show is not None:
            self._on_show(pattern)

    def start(self) -> None:
        """Show the steady state (at service start)."""
        self._show_steady()

    async def close(self) -> None:
        """Stop any moment and leave every LED and the buzzer off."""
        if self._moment is not None:
            self._moment.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._moment
        self._lights.set(DARK)
        self._buzzer.set(False)
