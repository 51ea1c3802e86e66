"""Circulation's rules with no database: holds, renewals, reservations, loan policies."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from broker.messages import ProblemReport, Reason
from central import circulation
from central.rules import (
    AWAITING_CHECK,
    InsertCheckout,
    MoveHold,
    OpenTicket,
    PlaceHold,
    RenewCheckout,
)
from central.storage.rows import ClosedLoan, HoldRow, HoldState, ReservationRow, Standing, Terms
from tests.unit.central.test_rules import DRILL, LABEL, LOAN, NOW, SESSION, facts, run

TERMS = Terms(None, 14)
HOUR = timedelta(hours=1)


def hold(
    hold_id: int, member_id: str, state: HoldState = HoldState.WAITING, **kw: object
) -> HoldRow:
    row = HoldRow(hold_id, "I-1", member_id, NOW - timedelta(days=1) + hold_id * HOUR, state)
    return dataclasses.replace(row, **kw)  # type: ignore[arg-type]  # test overrides


def booking(member_id: str, starts_in: timedelta, days: int = 2) -> ReservationRow:
    return ReservationRow(
        1, "I-1", member_id, NOW + starts_in, NOW + starts_in + timedelta(days=days)
    )


# --- hold expiry (the rule the reminders rely on) ----------------------------------------


def test_a_ready_hold_never_expires_while_nobody_told_the_member() -> None:
    ready = hold(1, "M-2", HoldState.READY, ready_at=NOW - timedelta(days=30))
    assert not circulation.hold_expired(ready, NOW, 48)


def test_a_ready_hold_runs_the_later_of_its_hours_and_a_day_after_the_notice() -> None:
    ready_at = NOW - 48 * HOUR
    told_early = hold(1, "M-2", HoldState.READY, ready_at=ready_at, notified_at=ready_at)
    assert circulation.hold_expired(told_early, NOW, 48)
    assert not circulation.hold_expired(told_early, NOW - timedelta(seconds=1), 48)
    told_late = dataclasses.replace(told_early, notified_at=NOW - 2 * HOUR)
    assert not circulation.hold_expired(told_late, NOW, 48)
    assert circulation.hold_expired(told_late, NOW + 22 * HOUR, 48)


def test_pass_on_expires_the_run_out_hold_and_readies_the_next_once() -> None:
    gone = hold(1, "M-2", HoldState.READY, ready_at=NOW - 72 * HOUR, notified_at=NOW - 72 * HOUR)
    holds = [gone, hold(2, "M-3"), hold(3, "M-4")]
    moves = circulation.pass_on(holds, NOW, 48, free=True)
    assert (moves.expire, moves.ready) == ((1,), 2)
    after = [hold(2, "M-3", HoldState.READY, ready_at=NOW), hold(3, "M-4")]
    assert not circulation.pass_on(after, NOW, 48, free=True).changed  # idempotent
    assert circulation.pass_on(holds, NOW, 48, free=False).ready is None  # lent: nobody ready


# --- renewals ------------------------------------------------------------------------------


def test_renewal_refusals_each_have_their_reason() -> None:
    def refusal(**kw: object) -> Reason | None:
        args: dict[str, object] = {
            "due_at": NOW + HOUR,
            "renewals": 0,
            "terms": TERMS,
            "others_waiting": False,
            "now": NOW,
        }
        return circulation.renewal_refusal(**(args | kw))  # type: ignore[arg-type]

    assert refusal() is None
    assert refusal(others_waiting=True) is Reason.HOLD_WAITING
    assert refusal(renewals=2) is Reason.RENEWAL_LIMIT
    assert refusal(due_at=NOW - 23 * HOUR) is None  # within the grace period
    assert refusal(due_at=NOW - 25 * HOUR) is Reason.TOO_OVERDUE


def test_scanning_ones_own_loan_renews_it_from_its_due_time() -> None:
    mine = dataclasses.replace(LOAN, member_id="M-1")
    decision = run(facts(session=SESSION, open_checkout=mine), LABEL)
    assert decision.reason is Reason.RENEWED
    assert decision.due_at == mine.due_at + timedelta(days=14)
    assert RenewCheckout(mine.checkout_id, mine.due_at + timedelta(days=14)) in decision.effects


def test_a_renewal_is_refused_when_someone_waits_and_changes_nothing() -> None:
    mine = dataclasses.replace(LOAN, member_id="M-1")
    decision = run(facts(session=SESSION, open_checkout=mine, holds=(hold(1, "M-2"),)), LABEL)
    assert (decision.reason, decision.effects) == (Reason.HOLD_WAITING, [])


# --- holds at the kiosk --------------------------------------------------------------------


def test_a_hold_placed_in_a_session_joins_the_waitlist() -> None:
    decision = run(facts(session=SESSION, open_checkout=LOAN), LABEL)
    assert decision.reason is Reason.HOLD_PLACED
    assert PlaceHold("I-1", "M-1") in decision.effects
    already = run(facts(session=SESSION, open_checkout=LOAN, holds=(hold(1, "M-1"),)), LABEL)
    assert (already.reason, already.effects) == (Reason.ITEM_UNAVAILABLE, [])


def test_a_return_allocates_the_item_to_the_first_member_waiting() -> None:
    decision = run(facts(open_checkout=LOAN, holds=(hold(1, "M-3"), hold(2, "M-4"))), LABEL)
    assert decision.reason is Reason.RETURNED_TO_HOLD
    assert decision.reason.accepted
    assert [e for e in decision.effects if isinstance(e, MoveHold)] == [
        MoveHold(1, HoldState.READY)
    ]
    plain = run(facts(open_checkout=LOAN), LABEL)
    assert plain.reason is Reason.RETURNED


def test_a_held_item_is_lent_only_to_its_holder() -> None:
    ready = hold(1, "M-2", HoldState.READY, ready_at=NOW - HOUR)
    other = run(facts(session=SESSION, holds=(ready,)), LABEL)
    assert (other.reason, other.effects) == (Reason.RESERVED, [])
    mine = dataclasses.replace(ready, member_id="M-1")
    decision = run(facts(session=SESSION, holds=(mine,)), LABEL)
    assert decision.reason is Reason.CHECKED_OUT
    assert MoveHold(1, HoldState.FULFILLED) in decision.effects


def test_a_run_out_hold_passes_on_when_the_item_is_scanned() -> None:
    gone = hold(1, "M-2", HoldState.READY, ready_at=NOW - 72 * HOUR, notified_at=NOW - 72 * HOUR)
    # The next in the queue is Anna herself: she may take it now.
    decision = run(facts(session=SESSION, holds=(gone, hold(2, "M-1"))), LABEL)
    assert decision.reason is Reason.CHECKED_OUT
    moved = [e for e in decision.effects if isinstance(e, MoveHold)]
    assert moved == [
        MoveHold(1, HoldState.EXPIRED),
        MoveHold(2, HoldState.READY),
        MoveHold(2, HoldState.FULFILLED),
    ]
    # Someone else is next: Anna is refused, but the hold still passes on.
    refused = run(facts(session=SESSION, holds=(gone, hold(2, "M-3"))), LABEL)
    assert refused.reason is Reason.RESERVED
    assert MoveHold(2, HoldState.READY) in refused.effects


# --- reservations --------------------------------------------------------------------------


def test_a_booking_shortens_a_loan_or_refuses_it() -> None:
    soon = booking("M-2", timedelta(days=5))
    decision = run(facts(session=SESSION, reservation=soon), LABEL)
    assert decision.reason is Reason.CHECKED_OUT
    assert decision.due_at == soon.starts_at
    buffered = dataclasses.replace(TERMS, buffer_hours=12)
    shorter = run(facts(session=SESSION, reservation=soon, terms=buffered), LABEL)
    assert shorter.due_at == soon.starts_at - 12 * HOUR
    too_close = booking("M-2", 20 * HOUR)
    assert run(facts(session=SESSION, reservation=too_close), LABEL).reason is Reason.RESERVED


def test_ones_own_booking_lends_until_its_end() -> None:
    mine = booking("M-1", timedelta(0))
    assert circulation.loan_end(NOW, "M-1", TERMS, mine) == mine.ends_at


# --- loan policies -------------------------------------------------------------------------


def test_policy_refusals_each_have_their_reason() -> None:
    saw = Terms("saws", 7, needs_training=True, needs_agreement=True, max_out=1)
    ok = Standing(trained=True, agreed=True)

    def reason(standing: Standing, terms: Terms = saw) -> Reason:
        return run(facts(session=SESSION, terms=terms, standing=standing), LABEL).reason

    assert reason(ok) is Reason.CHECKED_OUT
    assert reason(dataclasses.replace(ok, trained=False)) is Reason.NEEDS_TRAINING
    assert reason(dataclasses.replace(ok, agreed=False)) is Reason.NEEDS_AGREEMENT
    assert reason(dataclasses.replace(ok, oldest_due=NOW - timedelta(days=15))) is (
        Reason.OVERDUE_BLOCK
    )
    assert reason(dataclasses.replace(ok, oldest_due=NOW - timedelta(days=13))) is (
        Reason.CHECKED_OUT
    )
    assert reason(dataclasses.replace(ok, out_in_category=1)) is Reason.LIMIT_REACHED
    never = dataclasses.replace(saw, overdue_block_days=0)
    assert reason(dataclasses.replace(ok, oldest_due=NOW - timedelta(days=99)), never) is (
        Reason.CHECKED_OUT
    )


def test_a_category_loan_period_sets_the_due_time() -> None:
    decision = run(facts(session=SESSION, terms=Terms("saws", 3)), LABEL)
    assert decision.due_at == NOW + timedelta(days=3)
    assert InsertCheckout(DRILL.item_id, "M-1", SESSION.session_id, NOW + timedelta(days=3)) in (
        decision.effects
    )


# --- inspection at return ------------------------------------------------------------------


def report(at: datetime = NOW) -> ProblemReport:
    return ProblemReport(
        event_id="EVENT-0003", kiosk_id="K-1", scanned_at=at, return_event_id="EVENT-0001"
    )


def test_a_problem_reported_after_a_return_opens_a_ticket() -> None:
    closed = ClosedLoan(9, "I-1", "M-2", NOW - timedelta(seconds=4))
    decision = run(facts(returned=closed), None, report())
    assert (decision.reason, decision.member_id) == (Reason.PROBLEM_REPORTED, "M-2")
    assert OpenTicket("I-1", "M-2", 9) in decision.effects
    late = run(facts(returned=closed), None, report(NOW + timedelta(minutes=3)))
    assert (late.reason, late.effects) == (Reason.NOT_CHECKED_OUT, [])
    unknown = run(facts(returned=None), None, report())
    assert (unknown.reason, unknown.effects) == (Reason.MALFORMED, [])


def test_a_category_that_requires_a_check_sends_returns_to_repair_not_to_holds() -> None:
    kits = Terms("kits", 7, inspection_required=True)
    decision = run(facts(terms=kits, open_checkout=LOAN, holds=(hold(1, "M-3"),)), LABEL)
    assert decision.reason is Reason.RETURNED
    assert OpenTicket("I-1", LOAN.member_id, LOAN.checkout_id, AWAITING_CHECK) in decision.effects
    assert not [e for e in decision.effects if isinstance(e, MoveHold)]
