"""The walk-up rules, one test per rule, with no database: facts in, a decision out."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.messages import AnyEvent, CodeScan, ProblemReport, Reason, SessionDone
from central.rules import (
    UNLOADED,
    CloseCheckout,
    CloseSessions,
    Decision,
    Facts,
    InsertCheckout,
    LiftCooldown,
    Need,
    Policy,
    SaveBucket,
    StartSession,
    decide,
    steps,
)
from central.security import Limits
from central.storage.base import CheckoutRow, ItemRow, KioskRow, MemberRow, PassUse, SessionRow
from central.storage.rollout import FlagMode, FlagRow, FlagSetting
from central.storage.rows import ClosedLoan, HoldRow, HoldState, ReservationRow, Standing, Terms
from central.tokens import Enrolment, Label, Pass, Token

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
KIOSK = KioskRow("K-1", "S-1", False, None, 1, 60.0)
ANNA = MemberRow("M-1", "Anna", False, 3)
DRILL = ItemRow("I-1", "S-1", "Drill", 1, "available", 14)
PASS = Pass("P-1", "M-1", NOW + timedelta(hours=1))
LABEL = Label("I-1", 1)
SESSION = SessionRow(7, "K-1", "M-1", NOW + timedelta(seconds=30))
LOAN = CheckoutRow(9, "I-1", "M-2", NOW - timedelta(days=2), NOW + timedelta(days=12))
ON = FlagRow(FlagSetting(FlagMode.ON), "on", "admin:t", NOW, None, None, None)
OFF = FlagRow(FlagSetting(FlagMode.OFF), "off", "admin:t", NOW, None, None, None)
NO_LIMITS = Policy()
LIMITS = Policy(Limits())
FULL = (20.0, NOW)


def facts(**changes: object) -> Facts:
    """Everything the database could say about a scan at an idle, honest kiosk."""
    base = Facts(
        kiosk=KIOSK,
        cooldown=(-1.0, NOW),
        session=None,
        kiosk_bucket=FULL,
        member_bucket=(10.0, NOW),
        flag=ON,
        item=DRILL,
        terms=Terms(None, 14),
        open_checkout=None,
        holds=(),
        reservation=None,
        member=ANNA,
        member_loans=0,
        standing=Standing(),
        pass_use=PassUse.CONSUMED,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]  # test overrides


def scan(at: datetime = NOW, *, queued: bool = False) -> CodeScan:
    return CodeScan(
        event_id="EVENT-0001", kiosk_id="K-1", code="CS:TEST", scanned_at=at, queued=queued
    )


def done(at: datetime = NOW) -> SessionDone:
    return SessionDone(event_id="EVENT-0002", kiosk_id="K-1", scanned_at=at)


def run(
    f: Facts,
    token: Token | Reason | None,
    event: AnyEvent | None = None,
    policy: Policy = NO_LIMITS,
) -> Decision:
    decided = decide(f, event or scan(), token, NOW, policy)
    assert isinstance(decided, Decision), f"asked for {decided} with every fact loaded"
    return decided


# --- the kiosk -------------------------------------------------------------------------


def test_unknown_or_retired_kiosk_is_refused() -> None:
    assert run(facts(kiosk=None), PASS).reason is Reason.KIOSK_BLOCKED
    retired = dataclasses.replace(KIOSK, retired=True)
    assert run(facts(kiosk=retired), LABEL).reason is Reason.KIOSK_BLOCKED


def test_a_person_s_block_holds_against_a_pass() -> None:
    blocked = dataclasses.replace(KIOSK, blocked_until=NOW + timedelta(minutes=5))
    decision = run(facts(kiosk=blocked), PASS)
    assert decision.reason is Reason.KIOSK_BLOCKED
    assert decision.effects == []


def test_a_pass_that_opens_a_session_lifts_a_cool_down() -> None:
    until = NOW + timedelta(seconds=5)
    cooling = dataclasses.replace(KIOSK, blocked_until=until)
    decision = run(facts(kiosk=cooling, cooldown=(1.0, until)), PASS)
    assert decision.reason is Reason.SESSION_OPENED
    assert LiftCooldown("K-1") in decision.effects


def test_a_cool_down_refuses_labels_and_passes_that_open_nothing() -> None:
    until = NOW + timedelta(seconds=5)
    cooling = dataclasses.replace(KIOSK, blocked_until=until)
    assert run(facts(kiosk=cooling, cooldown=(1.0, until)), LABEL).reason is Reason.KIOSK_BLOCKED
    used = facts(kiosk=cooling, cooldown=(1.0, until), pass_use=PassUse.ALREADY_USED)
    decision = run(used, PASS)
    assert decision.reason is Reason.KIOSK_BLOCKED
    assert not any(isinstance(e, LiftCooldown) for e in decision.effects)


# --- time ------------------------------------------------------------------------------


def test_a_scan_from_the_future_is_malformed() -> None:
    assert run(facts(), PASS, scan(NOW + timedelta(minutes=6))).reason is Reason.MALFORMED


def test_a_late_pass_is_expired_and_left_unconsumed() -> None:
    decision = run(facts(pass_use=UNLOADED), PASS, scan(NOW - timedelta(minutes=2)))
    assert decision.reason is Reason.EXPIRED
    assert decision.effects == []


def test_a_queued_pass_is_malformed() -> None:
    assert run(facts(), PASS, scan(queued=True)).reason is Reason.MALFORMED


def test_a_late_label_in_a_session_is_only_a_return() -> None:
    late = scan(NOW - timedelta(minutes=2))
    decision = run(facts(session=SESSION), LABEL, late)
    assert decision.reason is Reason.NOT_CHECKED_OUT


# --- sessions --------------------------------------------------------------------------


def test_done_closes_the_session() -> None:
    decision = run(facts(session=SESSION), None, done())
    assert decision.reason is Reason.SESSION_CLOSED
    assert decision.effects == [CloseSessions("K-1")]
    assert decision.session_expires_at is None


def test_a_late_done_leaves_a_newer_session_open() -> None:
    decision = run(facts(session=SESSION), None, done(NOW - timedelta(minutes=2)))
    assert decision.reason is Reason.SESSION_CLOSED
    assert decision.effects == []
    assert decision.session_expires_at == SESSION.expires_at


def test_a_pass_opens_a_session_and_ends_the_previous_one() -> None:
    decision = run(facts(session=SESSION), PASS)
    assert decision.reason is Reason.SESSION_OPENED
    expires = NOW + timedelta(seconds=60)
    assert decision.effects == [CloseSessions("K-1"), StartSession("K-1", "M-1", "P-1", expires)]
    assert decision.session_expires_at == expires


@pytest.mark.parametrize(
    ("use", "reason"),
    [
        (PassUse.ALREADY_USED, Reason.ALREADY_USED),
        (PassUse.INVALIDATED, Reason.REVOKED),
        (PassUse.EXPIRED, Reason.EXPIRED),
        (PassUse.UNKNOWN, Reason.UNKNOWN_CODE),
    ],
)
def test_a_pass_the_database_would_not_consume_opens_nothing(use: PassUse, reason: Reason) -> None:
    decision = run(facts(pass_use=use), PASS)
    assert decision.reason is reason
    assert decision.effects == []


def test_a_suspended_member_s_pass_is_refused_before_it_is_consumed() -> None:
    suspended = dataclasses.replace(ANNA, suspended=True)
    decision = run(facts(member=suspended, pass_use=UNLOADED), PASS)
    assert decision.reason is Reason.MEMBER_SUSPENDED


def test_an_unknown_member_s_pass_is_an_unknown_code() -> None:
    assert run(facts(member=None, pass_use=UNLOADED), PASS).reason is Reason.UNKNOWN_CODE


# --- checkouts -------------------------------------------------------------------------


def test_a_label_in_a_session_checks_the_item_out() -> None:
    decision = run(facts(session=SESSION), LABEL)
    assert decision.reason is Reason.CHECKED_OUT
    assert decision.due_at == NOW + timedelta(days=14)
    assert InsertCheckout("I-1", "M-1", 7, NOW + timedelta(days=14)) in decision.effects
    assert decision.session_expires_at == NOW + timedelta(seconds=60)  # idle timer restarted


def test_a_label_with_no_session_and_no_loan_says_no_session() -> None:
    assert run(facts(), LABEL).reason is Reason.NO_SESSION


def test_an_item_on_loan_takes_a_hold_and_one_in_maintenance_or_retired_nothing() -> None:
    # Since circulation (docs/circulation.md): scanning an item someone else has out puts
    # the member on its waitlist instead of a bare refusal.
    assert run(facts(session=SESSION, open_checkout=LOAN), LABEL).reason is Reason.HOLD_PLACED
    repair = dataclasses.replace(DRILL, state="maintenance")
    assert run(facts(session=SESSION, item=repair), LABEL).reason is Reason.ITEM_UNAVAILABLE
    retired = dataclasses.replace(DRILL, state="retired")
    assert run(facts(session=SESSION, item=retired), LABEL).reason is Reason.ITEM_UNAVAILABLE


def test_a_member_at_their_limit_checks_out_nothing() -> None:
    decision = run(facts(session=SESSION, member_loans=3), LABEL)
    assert decision.reason is Reason.LIMIT_REACHED
    assert decision.effects == []


def test_a_member_suspended_mid_session_checks_out_nothing() -> None:
    suspended = dataclasses.replace(ANNA, suspended=True)
    assert run(facts(session=SESSION, member=suspended), LABEL).reason is (Reason.MEMBER_SUSPENDED)


def test_a_reprinted_label_is_revoked() -> None:
    assert run(facts(session=SESSION), Label("I-1", 0)).reason is Reason.REVOKED


def test_an_unknown_item_or_an_enrolment_code_is_an_unknown_code() -> None:
    assert run(facts(item=None), LABEL).reason is Reason.UNKNOWN_CODE
    enrolment = Enrolment("C-1", "S-1", NOW + timedelta(hours=1))
    assert run(facts(), enrolment).reason is Reason.UNKNOWN_CODE


def test_an_unverified_code_keeps_its_reason() -> None:
    assert run(facts(), Reason.BAD_SIGNATURE).reason is Reason.BAD_SIGNATURE
    assert run(facts(), None).reason is Reason.MALFORMED


# --- returns ---------------------------------------------------------------------------


def test_a_label_with_no_session_returns_its_loan() -> None:
    decision = run(facts(open_checkout=LOAN), LABEL)
    assert decision.reason is Reason.RETURNED
    assert decision.member_id == "M-2"
    assert CloseCheckout(9, NOW) in decision.effects
    assert not decision.quick_return


def test_a_return_at_another_shelf_is_refused_unless_it_is_a_return_point() -> None:
    elsewhere = dataclasses.replace(KIOSK, shelf_id="S-2")
    assert run(facts(kiosk=elsewhere, open_checkout=LOAN), LABEL).reason is Reason.WRONG_SHELF
    point = dataclasses.replace(elsewhere, return_point=True)
    assert run(facts(kiosk=point, open_checkout=LOAN), LABEL).reason is Reason.RETURNED


def test_a_queued_return_never_closes_a_loan_that_began_after_it() -> None:
    before_loan = scan(LOAN.checked_out_at - timedelta(minutes=1), queued=True)
    decision = run(facts(open_checkout=LOAN), LABEL, before_loan)
    assert decision.reason is Reason.NOT_CHECKED_OUT
    assert decision.effects == []


def test_a_queued_return_is_dated_when_it_was_scanned() -> None:
    at = NOW - timedelta(hours=1)
    decision = run(facts(open_checkout=LOAN), LABEL, scan(at, queued=True))
    assert decision.reason is Reason.RETURNED
    assert CloseCheckout(9, at) in decision.effects


def test_a_loan_returned_within_minutes_is_marked_for_staff() -> None:
    quick = dataclasses.replace(LOAN, checked_out_at=NOW - timedelta(minutes=2))
    decision = run(facts(open_checkout=quick), LABEL)
    assert decision.reason is Reason.RETURNED
    assert decision.quick_return


# --- the rollout flag ------------------------------------------------------------------


def test_the_flag_off_holds_back_checkouts_but_not_returns() -> None:
    assert run(facts(flag=OFF), PASS).reason is Reason.FEATURE_DISABLED
    assert run(facts(flag=OFF, session=SESSION), LABEL).reason is Reason.FEATURE_DISABLED
    assert run(facts(flag=OFF, open_checkout=LOAN), LABEL).reason is Reason.RETURNED
    queued = scan(NOW - timedelta(minutes=1), queued=True)
    assert run(facts(flag=OFF, open_checkout=LOAN), LABEL, queued).reason is Reason.RETURNED


# --- rate limits -----------------------------------------------------------------------


def test_an_empty_kiosk_bucket_refuses_the_scan() -> None:
    decision = run(facts(kiosk_bucket=(0.5, NOW)), PASS, policy=LIMITS)
    assert decision.reason is Reason.RATE_LIMITED
    assert decision.effects == [SaveBucket("kiosk:K-1", 0.5, NOW)]


def test_the_kiosk_pays_for_every_scan() -> None:
    decision = run(facts(), Reason.BAD_SIGNATURE, policy=LIMITS)
    assert decision.effects == [SaveBucket("kiosk:K-1", 19.0, NOW)]


def test_an_empty_member_bucket_refuses_the_member_s_scan() -> None:
    assert run(facts(member_bucket=(0.0, NOW)), PASS, policy=LIMITS).reason is (Reason.RATE_LIMITED)


def test_a_member_is_charged_only_when_accepted() -> None:
    accepted = run(facts(), PASS, policy=LIMITS)
    assert SaveBucket("member:M-1", 9.0, NOW) in accepted.effects
    refused = run(facts(pass_use=PassUse.ALREADY_USED), PASS, policy=LIMITS)
    assert not any(
        isinstance(e, SaveBucket) and e.key.startswith("member:") for e in refused.effects
    )


def test_a_bucket_refills_with_time() -> None:
    minute_ago = (0.0, NOW - timedelta(minutes=1))
    decision = run(facts(kiosk_bucket=minute_ago), PASS, policy=LIMITS)
    assert decision.reason is Reason.SESSION_OPENED


# --- the shell's contract: facts asked one at a time, in lock order --------------------

_ORDER = list(Need)
_KIOSKS = st.sampled_from(
    [
        KIOSK,
        None,
        dataclasses.replace(KIOSK, shelf_id="S-2"),
        dataclasses.replace(KIOSK, blocked_until=NOW + timedelta(seconds=5)),
    ]
)
_EVENTS = st.sampled_from(
    [
        scan(),
        scan(NOW - timedelta(minutes=2)),
        scan(NOW - timedelta(minutes=2), queued=True),
        scan(NOW + timedelta(minutes=6)),
        done(),
        done(NOW - timedelta(minutes=2)),
        ProblemReport(
            event_id="EVENT-0003", kiosk_id="K-1", scanned_at=NOW, return_event_id="EVENT-0001"
        ),
    ]
)
_HOLDS = [
    (),
    (HoldRow(1, "I-1", "M-2", NOW - timedelta(days=1), HoldState.WAITING),),
    (HoldRow(1, "I-1", "M-1", NOW - timedelta(days=1), HoldState.READY, NOW, None),),
    (
        HoldRow(1, "I-1", "M-2", NOW - timedelta(days=9), HoldState.READY, NOW, NOW),
        HoldRow(2, "I-1", "M-1", NOW - timedelta(days=1), HoldState.WAITING),
    ),
]
_TOKENS: st.SearchStrategy[Token | Reason | None] = st.sampled_from(
    [PASS, LABEL, Label("I-1", 0), Reason.BAD_SIGNATURE, None]
)
_FACTS = st.builds(
    facts,
    kiosk=_KIOSKS,
    cooldown=st.sampled_from([(-1.0, NOW), (1.0, NOW + timedelta(seconds=5))]),
    session=st.sampled_from([None, SESSION]),
    kiosk_bucket=st.sampled_from([FULL, (0.0, NOW)]),
    member_bucket=st.sampled_from([(10.0, NOW), (0.0, NOW)]),
    flag=st.sampled_from([ON, OFF]),
    item=st.sampled_from([DRILL, None, dataclasses.replace(DRILL, state="maintenance")]),
    open_checkout=st.sampled_from([None, LOAN, dataclasses.replace(LOAN, member_id="M-1")]),
    terms=st.sampled_from([Terms(None, 14), Terms("saws", 3, needs_training=True, max_out=1)]),
    holds=st.sampled_from(_HOLDS),
    reservation=st.sampled_from(
        [None, ReservationRow(1, "I-1", "M-2", NOW + timedelta(hours=5), NOW + timedelta(days=2))]
    ),
    standing=st.sampled_from([Standing(), Standing(trained=False, out_in_category=1)]),
    returned=st.sampled_from([None, ClosedLoan(9, "I-1", "M-2", NOW - timedelta(seconds=3))]),
    member=st.sampled_from([ANNA, None, dataclasses.replace(ANNA, suspended=True)]),
    member_loans=st.integers(0, 4),
    pass_use=st.sampled_from(list(PassUse)),
)


@settings(max_examples=300, deadline=None)
@given(full=_FACTS, event=_EVENTS, token=_TOKENS, limited=st.booleans())
def test_facts_are_asked_in_lock_order_and_change_nothing(
    full: Facts, event: AnyEvent, token: Token | Reason | None, limited: bool
) -> None:
    """Loading facts as asked reaches the decision the full facts give, in lock order,
    each fact once."""
    policy = LIMITS if limited else NO_LIMITS
    expected = decide(full, event, token, NOW, policy)
    assert isinstance(expected, Decision)
    partial = Facts()
    asked: list[Need] = []
    walk = steps(partial, event, token, NOW, policy)  # driven as the shell drives it
    try:
        step = next(walk)
        while True:
            assert step not in asked, f"{step} asked twice"
            assert not asked or _ORDER.index(step) > _ORDER.index(asked[-1]), (
                f"{step} asked after {asked[-1]}: out of lock order"
            )
            asked.append(step)
            setattr(partial, step.value, getattr(full, step.value))
            step = walk.send(None)
    except StopIteration as done:
        reached = done.value
    assert reached == expected
    # And in one call, from nothing: the first fact this walk asked for.
    assert decide(Facts(), event, token, NOW, policy) == (asked[0] if asked else expected)
