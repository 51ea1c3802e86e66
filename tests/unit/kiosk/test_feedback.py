"""Feedback: every verdict has a pattern a member can tell apart, played on real GPIO code."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from broker.messages import Reason
from hardware.gpio import GpioBuzzer, GpioLights
from kiosk.clock import ManualClock
from kiosk.feedback import (
    DARK,
    PATTERNS,
    SIGNAL_FOR_REASON,
    STEADY,
    FeedbackPlayer,
    Signal,
)

RED, GREEN, BLUE, BUZZER = 17, 27, 22, 23
MOMENTS = [signal for signal in Signal if signal not in STEADY]


# -- the table -------------------------------------------------------------------------


def test_every_reason_central_can_give_has_a_signal() -> None:
    assert set(SIGNAL_FOR_REASON) == set(Reason)


def test_verdicts_map_to_moments_not_to_steady_states() -> None:
    assert all(signal not in STEADY for signal in SIGNAL_FOR_REASON.values())


@pytest.mark.parametrize("reason", list(Reason))
def test_a_member_can_tell_yes_from_no(reason: Reason) -> None:
    refused = SIGNAL_FOR_REASON[reason].value.startswith("refused")
    assert refused is not reason.accepted


CIRCULATION = {
    Reason.HOLD_PLACED: (Signal.HOLD_PLACED, ("green", "amber")),
    Reason.RENEWED: (Signal.RENEWED, ("green", "dark")),
    Reason.RETURNED_TO_HOLD: (Signal.HOLD_SHELF, ("cyan", "blue")),
    Reason.PROBLEM_REPORTED: (Signal.PROBLEM_NOTED, ("cyan", "magenta")),
    Reason.RESERVED: (Signal.REFUSED_RESERVED, ("red", "blue")),
    Reason.HOLD_WAITING: (Signal.REFUSED_HOLD_WAITING, ("red", "green")),
    Reason.RENEWAL_LIMIT: (Signal.REFUSED_RENEWAL_LIMIT, ("red", "green")),
    Reason.TOO_OVERDUE: (Signal.REFUSED_TOO_OVERDUE, ("red", "amber")),
    Reason.NEEDS_TRAINING: (Signal.REFUSED_TRAINING, ("magenta", "dark")),
    Reason.NEEDS_AGREEMENT: (Signal.REFUSED_AGREEMENT, ("magenta", "blue")),
    Reason.OVERDUE_BLOCK: (Signal.REFUSED_OVERDUE_BLOCK, ("magenta", "amber")),
}
_COLOUR_NAMES = {
    (True, False, False): "red",
    (False, True, False): "green",
    (False, False, True): "blue",
    (True, True, False): "amber",
    (False, True, True): "cyan",
    (True, False, True): "magenta",
    (False, False, False): "dark",
}


@pytest.mark.parametrize("reason", list(CIRCULATION))
def test_each_circulation_reason_has_its_own_pattern(reason: Reason) -> None:
    signal, (first, second) = CIRCULATION[reason]
    assert SIGNAL_FOR_REASON[reason] is signal
    # Its own: no other reason shows it.
    assert [r for r, s in SIGNAL_FOR_REASON.items() if s is signal] == [reason]
    steps = PATTERNS[signal].steps
    colours = [_COLOUR_NAMES[(s.lights.red, s.lights.green, s.lights.blue)] for s in steps]
    assert colours[:2] == [first, second]
    assert steps[0].buzzer, "every circulation answer beeps once at least"


def test_every_signal_has_its_own_pattern() -> None:
    assert set(PATTERNS) == set(Signal)
    for signal, pattern in PATTERNS.items():
        assert pattern.signal is signal
        assert pattern.steps
        assert pattern.describe


def test_moment_patterns_are_pairwise_distinct() -> None:
    for a, b in itertools.combinations(MOMENTS, 2):
        assert PATTERNS[a].steps != PATTERNS[b].steps, f"{a} and {b} look and sound the same"


def test_steady_states_are_distinct_silent_colours() -> None:
    colours = [PATTERNS[signal].steps for signal in STEADY]
    assert all(len(steps) == 1 for steps in colours)
    assert len({steps[0].lights for steps in colours}) == len(STEADY)
    assert not any(steps[0].buzzer for steps in colours)  # no buzzer left sounding
    assert not any(steps[0].lights == DARK for steps in colours)  # a dark kiosk looks dead


@pytest.mark.parametrize("signal", MOMENTS)
def test_moments_show_something_at_once_and_end(signal: Signal) -> None:
    steps = PATTERNS[signal].steps
    # The member's feedback must start with the first step, not after a dark pause.
    assert steps[0].lights != DARK
    assert all(step.seconds > 0 for step in steps)
    assert sum(step.seconds for step in steps) <= 5.0


# -- the player on gpiozero's mock pins ---------------------------------------------------


@dataclass
class Rig:
    factory: Any
    clock: ManualClock
    player: FeedbackPlayer

    def lit(self) -> tuple[bool, bool, bool]:
        red, green, blue = (bool(self.factory.pin(n).state) for n in (RED, GREEN, BLUE))
        return red, green, blue

    @property
    def buzzing(self) -> bool:
        return bool(self.factory.pin(BUZZER).state)

    def history(self, pin: int) -> list[bool]:
        return [bool(change.state) for change in self.factory.pin(pin).states]


@pytest.fixture
def factory() -> Iterator[Any]:
    factory = MockFactory()
    yield factory
    factory.reset()


@pytest.fixture
async def rig(factory: Any) -> AsyncIterator[Rig]:
    lights = GpioLights(RED, GREEN, BLUE, pin_factory=factory)
    buzzer = GpioBuzzer(BUZZER, pin_factory=factory)
    clock = ManualClock()
    player = FeedbackPlayer(lights, buzzer, clock)
    player.start()
    yield Rig(factory, clock, player)
    await player.close()
    lights.close()
    buzzer.close()


BLUE_ON = (False, False, True)
GREEN_ON = (False, True, False)
AMBER_ON = (True, True, False)
WHITE_ON = (True, True, True)
ALL_OFF = (False, False, False)


async def test_start_shows_idle_blue(rig: Rig) -> None:
    assert rig.lit() == BLUE_ON
    assert not rig.buzzing
    assert rig.player.steady is Signal.IDLE


async def test_checked_out_is_green_with_a_short_beep_then_back_to_steady(rig: Rig) -> None:
    task = rig.player.play(Signal.CHECKED_OUT)
    await asyncio.sleep(0)
    assert rig.lit() == GREEN_ON
    assert rig.buzzing

    await rig.clock.advance(0.14)
    assert rig.lit() == GREEN_ON
    assert rig.buzzing

    await rig.clock.advance(0.03)  # 0.17 s: the beep is over, the green stays
    assert rig.lit() == GREEN_ON
    assert not rig.buzzing

    await rig.clock.advance(0.40)  # 0.57 s: still the moment
    assert rig.lit() == GREEN_ON
    assert not task.done()

    await rig.clock.advance(0.05)  # 0.62 s: back to idle blue
    assert task.done()
    assert rig.lit() == BLUE_ON
    assert not rig.buzzing
    assert rig.history(GREEN) == [False, True, False]
    assert rig.history(BUZZER) == [False, True, False]
    assert rig.history(BLUE) == [False, True, False, True]
    assert rig.player.history == [Signal.IDLE, Signal.CHECKED_OUT, Signal.IDLE]


async def test_moment_falls_back_to_the_current_steady_state(rig: Rig) -> None:
    rig.player.set_steady(Signal.SESSION)
    assert rig.lit() == GREEN_ON

    rig.player.play(Signal.RETURNED)
    await asyncio.sleep(0)
    assert rig.lit() == (False, True, True)  # cyan
    await rig.clock.advance(0.7)

    assert rig.lit() == GREEN_ON
    assert not rig.buzzing


async def test_a_new_moment_cuts_a_running_one_short(rig: Rig) -> None:
    identify = rig.player.play(Signal.IDENTIFY)  # four seconds of white flashes
    await asyncio.sleep(0)
    assert rig.lit() == WHITE_ON
    assert rig.buzzing
    await rig.clock.advance(0.1)

    checked_out = rig.player.play(Signal.CHECKED_OUT)
    await asyncio.sleep(0)
    assert identify.cancelled()
    assert rig.lit() == GREEN_ON

    await rig.clock.advance(0.65)
    assert checked_out.done()
    assert rig.lit() == BLUE_ON
    white_before = rig.history(RED).count(True)

    await rig.clock.advance(5.0, step=0.05)  # the cut pattern never comes back
    assert rig.lit() == BLUE_ON
    assert not rig.buzzing
    assert rig.history(RED).count(True) == white_before


async def test_a_moment_cut_mid_beep_does_not_leave_the_buzzer_on(rig: Rig) -> None:
    rig.player.play(Signal.REFUSED_CODE)  # a 0.6 s buzz
    await rig.clock.advance(0.1)
    assert rig.buzzing

    rig.player.play(Signal.SESSION_CLOSED)  # silent blinks
    await rig.clock.advance(0.05)

    assert not rig.buzzing


async def test_set_steady_during_a_moment_takes_effect_after_it(rig: Rig) -> None:
    task = rig.player.play(Signal.CHECKED_OUT)
    await asyncio.sleep(0)

    rig.player.set_steady(Signal.OFFLINE)
    assert rig.player.steady is Signal.OFFLINE
    assert rig.lit() == GREEN_ON  # the member still sees their checkout

    await rig.clock.advance(0.65)
    assert task.done()
    assert rig.lit() == AMBER_ON


async def test_set_steady_without_a_moment_shows_at_once(rig: Rig) -> None:
    rig.player.set_steady(Signal.OFFLINE)
    assert rig.lit() == AMBER_ON

    rig.player.set_steady(Signal.CAMERA_FAULT)
    assert rig.lit() == (True, False, False)


async def test_close_leaves_every_pin_low_and_the_buzzer_off(rig: Rig) -> None:
    rig.player.play(Signal.REFUSED_OFFLINE)  # amber with the buzzer on
    await asyncio.sleep(0)
    assert rig.buzzing

    await rig.player.close()
    assert rig.lit() == ALL_OFF
    assert not rig.buzzing

    # The stopped moment does not come back to light the steady state.
    await rig.clock.advance(2.0, step=0.05)
    assert rig.lit() == ALL_OFF
    assert not rig.buzzing


@pytest.mark.parametrize("reason", list(Reason))
async def test_every_verdict_pattern_plays_to_the_end_on_the_pins(rig: Rig, reason: Reason) -> None:
    signal = SIGNAL_FOR_REASON[reason]
    steps = PATTERNS[signal].steps

    task = rig.player.play(signal)
    await asyncio.sleep(0)
    first = steps[0].lights
    assert rig.lit() == (first.red, first.green, first.blue)
    assert rig.buzzing is steps[0].buzzer

    await rig.clock.advance(sum(step.seconds for step in steps) + 0.1, step=0.01)
    assert task.done()
    assert rig.lit() == BLUE_ON
    assert not rig.buzzing
