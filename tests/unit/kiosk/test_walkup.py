"""The walk-up state machine: what a scan means here and now, sessions, timeouts, LEDs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broker.ids import EventId
from broker.messages import CodeScan, KioskConfig, ProblemReport, Reason, SessionDone, Verdict
from central.tokens import KeyRing, TokenSigner
from kiosk.clock import ManualClock
from kiosk.feedback import Signal
from kiosk.walkup import Action, Mode, Walkup

KIOSK = "KIOSK-A1"
SIGNER = TokenSigner(KeyRing({"K1": b"k" * 32}, "K1"))
EXPIRES = datetime(2030, 1, 1, tzinfo=UTC)
LABEL = SIGNER.label("DRILL-01", 1)
OTHER_LABEL = SIGNER.label("SAW-01", 3)
PASS = SIGNER.member_pass("PASS-1", "M-1001", EXPIRES)
ENROLMENT = SIGNER.enrolment("CLAIM-1", "SHELF-A", EXPIRES)


def walkup(
    clock: ManualClock | None = None, *, online: bool = True, timeout: float = 60.0
) -> Walkup:
    machine = Walkup(KIOSK, clock or ManualClock(), session_timeout_s=timeout)
    machine.on_link(online)
    return machine


def verdict(
    reason: Reason, *, session_open: bool, member_name: str | None = None, event_id: str = "E" * 16
) -> Verdict:
    return Verdict(
        event_id=event_id,
        kiosk_id=KIOSK,
        reason=reason,
        accepted=reason.accepted,
        member_name=member_name,
        session_open=session_open,
        decided_at=datetime(2026, 1, 5, tzinfo=UTC),
    )


def mode(machine: Walkup) -> Mode:
    """Read through a call, so the type checker does not pin it between steps."""
    return machine.mode


def open_session(machine: Walkup, name: str = "Ada") -> None:
    machine.on_verdict(verdict(Reason.SESSION_OPENED, session_open=True, member_name=name))


# -- scans -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [PASS, LABEL], ids=["pass", "label"])
def test_online_pass_or_label_is_sent_to_central_as_this_kiosk(code: str) -> None:
    clock = ManualClock()
    machine = walkup(clock)

    decision = machine.on_code(code)

    assert decision.action is Action.SEND
    assert decision.signal is None  # the member waits for central's verdict
    assert isinstance(decision.event, CodeScan)
    assert decision.event.kiosk_id == KIOSK
    assert decision.event.code == code
    assert decision.event.queued is False
    assert decision.event.scanned_at == clock.wall()


def test_every_scan_gets_a_fresh_event_id() -> None:
    # Central applies each event id at most once: reusing one would swallow a real scan.
    machine = walkup()

    ids = set()
    for _ in range(20):
        event = machine.on_code(LABEL).event
        assert event is not None
        ids.add(event.event_id)

    assert len(ids) == 20


def test_online_item_scan_during_a_session_is_sent_as_a_checkout() -> None:
    machine = walkup()
    open_session(machine)

    decision = machine.on_code(OTHER_LABEL)

    assert decision.action is Action.SEND
    assert decision.event is not None
    assert decision.event.code == OTHER_LABEL


def test_offline_return_at_an_idle_kiosk_is_queued_and_confirmed() -> None:
    machine = walkup(online=False)

    decision = machine.on_code(LABEL)

    assert decision.action is Action.QUEUE
    assert decision.signal is Signal.QUEUED
    assert decision.event is not None
    assert decision.event.queued is True
    assert decision.event.kiosk_id == KIOSK
    assert decision.event.code == LABEL


def test_offline_pass_is_refused_because_checkout_needs_central() -> None:
    machine = walkup(online=False)

    decision = machine.on_code(PASS)

    assert decision.action is Action.REFUSE
    assert decision.signal is Signal.REFUSED_OFFLINE
    assert decision.event is None


def test_offline_item_scan_during_a_session_is_refused_not_queued_as_a_return() -> None:
    # Mid-checkout the label means "lend me this", which only central can grant.
    machine = walkup()
    open_session(machine)
    machine.on_link(False)  # the broker went away

    decision = machine.on_code(OTHER_LABEL)

    assert decision.action is Action.REFUSE
    assert decision.signal is Signal.REFUSED_OFFLINE
    assert decision.event is None
    assert mode(machine) is Mode.SESSION


@pytest.mark.parametrize("online", [True, False], ids=["online", "offline"])
@pytest.mark.parametrize(
    "code",
    [
        "https://example.org/poster",
        "HELLO WORLD",
        "",
        "cs1.l.k1.drill-01.1.mac",  # lower case: not our alphabet
        "CS2.L.K1.DRILL-01.1.MAC",  # another code family
        "CS1.X.K1.DRILL-01.1.MAC",  # unknown kind
        "CS1.L.K1.DRILL-01.MAC",  # a label missing a field
        LABEL + ".EXTRA",
        "CS1.L." + "A" * 300,  # too long to be ours
        ENROLMENT,  # enrolment codes are for setting a kiosk up, not for members
    ],
)
def test_codes_that_are_not_passes_or_labels_are_refused_locally(code: str, online: bool) -> None:
    machine = walkup(online=online)

    decision = machine.on_code(code)

    assert decision.action is Action.REFUSE
    assert decision.signal is Signal.REFUSED_CODE
    assert decision.event is None


# -- verdicts and sessions ---------------------------------------------------------------


def test_session_opened_verdict_starts_a_session_with_the_member_name() -> None:
    machine = walkup()

    open_session(machine, "Ada")

    assert mode(machine) is Mode.SESSION
    assert machine.member_name == "Ada"
    assert machine.steady() is Signal.SESSION


def test_verdict_keeping_the_session_keeps_the_member_name() -> None:
    machine = walkup()
    open_session(machine, "Ada")

    machine.on_verdict(verdict(Reason.CHECKED_OUT, session_open=True))

    assert mode(machine) is Mode.SESSION
    assert machine.member_name == "Ada"


@pytest.mark.parametrize("reason", [Reason.SESSION_CLOSED, Reason.RETURNED, Reason.EXPIRED])
def test_verdict_saying_no_session_returns_to_idle(reason: Reason) -> None:
    machine = walkup()
    open_session(machine)

    machine.on_verdict(verdict(reason, session_open=False))

    assert mode(machine) is Mode.IDLE
    assert machine.member_name is None
    assert machine.steady() is Signal.IDLE


async def test_session_ends_after_the_timeout_without_activity_and_not_before() -> None:
    clock = ManualClock()
    machine = walkup(clock, timeout=60.0)
    open_session(machine)

    await clock.advance(59.5, step=0.5)
    assert machine.tick() is False
    assert mode(machine) is Mode.SESSION

    await clock.advance(0.5, step=0.5)
    assert machine.tick() is True
    assert mode(machine) is Mode.IDLE
    assert machine.member_name is None
    assert machine.tick() is False  # ends once


async def test_each_verdict_that_keeps_the_session_restarts_the_timer() -> None:
    clock = ManualClock()
    machine = walkup(clock, timeout=60.0)
    open_session(machine)

    await clock.advance(40, step=1)
    machine.on_verdict(verdict(Reason.CHECKED_OUT, session_open=True))
    await clock.advance(40, step=1)  # 80 s after opening, 40 s after the last checkout
    assert machine.tick() is False
    assert mode(machine) is Mode.SESSION

    await clock.advance(20, step=1)
    assert machine.tick() is True
    assert mode(machine) is Mode.IDLE


async def test_tick_in_idle_does_nothing() -> None:
    clock = ManualClock()
    machine = walkup(clock)

    await clock.advance(3600, step=100)

    assert machine.tick() is False
    assert mode(machine) is Mode.IDLE


async def test_a_changed_timeout_applies_to_the_next_session() -> None:
    clock = ManualClock()
    machine = walkup(clock, timeout=60.0)
    machine.on_config(
        KioskConfig(kiosk_id=KIOSK, shelf_id="SHELF-A", config_version=2, session_timeout_s=5.0)
    )
    open_session(machine)

    await clock.advance(5, step=1)

    assert machine.tick() is True


def test_done_in_a_session_ends_it_and_tells_central() -> None:
    clock = ManualClock()
    machine = walkup(clock)
    open_session(machine)

    done = machine.on_done()

    assert isinstance(done, SessionDone)
    assert done.kiosk_id == KIOSK
    assert done.scanned_at == clock.wall()
    assert mode(machine) is Mode.IDLE
    assert machine.member_name is None
    assert machine.steady() is Signal.IDLE


def test_done_events_get_fresh_event_ids() -> None:
    machine = walkup()
    ids: set[EventId] = set()
    for _ in range(3):
        open_session(machine)
        done = machine.on_done()
        assert done is not None
        ids.add(done.event_id)

    assert len(ids) == 3


def test_done_when_idle_sends_nothing() -> None:
    machine = walkup()

    assert machine.on_done() is None
    assert mode(machine) is Mode.IDLE


async def test_a_session_ended_by_done_does_not_time_out_again() -> None:
    clock = ManualClock()
    machine = walkup(clock, timeout=10)
    open_session(machine)
    machine.on_done()

    await clock.advance(20, step=1)

    assert machine.tick() is False


# -- the steady LED state ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("camera_ok", "online", "session", "checkout_enabled", "expected"),
    [
        (False, False, True, False, Signal.CAMERA_FAULT),
        (False, True, True, True, Signal.CAMERA_FAULT),
        (False, True, False, True, Signal.CAMERA_FAULT),
        (True, False, True, True, Signal.OFFLINE),
        (True, False, False, False, Signal.OFFLINE),
        (True, True, True, True, Signal.SESSION),
        (True, True, True, False, Signal.SESSION),
        (True, True, False, True, Signal.IDLE),
        (True, True, False, False, Signal.CHECKOUT_OFF),
    ],
)
def test_steady_state_priority(
    camera_ok: bool, online: bool, session: bool, checkout_enabled: bool, expected: Signal
) -> None:
    # A broken camera matters most (nothing works), then the network (returns only), then
    # whether a member is mid-checkout, then whether checkout is switched on at all.
    machine = walkup(online=True)
    if session:
        open_session(machine)
    machine.on_camera(camera_ok)
    machine.on_link(online)
    machine.on_config(
        KioskConfig(
            kiosk_id=KIOSK, shelf_id="SHELF-A", config_version=2, checkout_enabled=checkout_enabled
        )
    )

    assert machine.steady() is expected


def test_a_new_kiosk_starts_idle_and_offline_until_it_connects() -> None:
    machine = Walkup(KIOSK, ManualClock())

    assert mode(machine) is Mode.IDLE
    assert machine.steady() is Signal.OFFLINE


# -- inspection at return ----------------------------------------------------------------


def test_the_button_reports_a_problem_only_just_after_a_return() -> None:
    clock = ManualClock()
    machine = Walkup(KIOSK, clock, inspect_window_s=5.0)
    machine.on_link(True)
    machine.on_verdict(verdict(Reason.RETURNED, session_open=False, event_id="R" * 16))
    assert machine.inspecting
    report = machine.on_done()
    assert isinstance(report, ProblemReport)
    assert report.return_event_id == "R" * 16
    assert machine.on_done() is None, "one report per return"

    machine.on_verdict(verdict(Reason.RETURNED, session_open=False, event_id="S" * 16))
    clock._now += 5.0  # no sleepers here: plain time passing
    assert not machine.inspecting
    assert machine.on_done() is None


def test_a_scan_ends_the_inspection_window_and_refusals_never_open_it() -> None:
    machine = Walkup(KIOSK, ManualClock(), inspect_window_s=5.0)
    machine.on_link(True)
    machine.on_verdict(verdict(Reason.WRONG_SHELF, session_open=False))
    assert not machine.inspecting
    machine.on_verdict(verdict(Reason.RETURNED, session_open=False))
    machine.on_code(PASS)
    assert not machine.inspecting
