"""A hypothesis state machine for circulation on the pure core: holds, renewals, bookings.

One item, three members, a clock. Each scan is decided by :func:`central.rules.decide` from
facts built out of a small in-memory library, whose writes are then applied; a separate,
plain model says what each scan should answer. Invariants: one ready hold at most, never
while lent; a held item goes only to its holder; no loan runs into another member's booking;
a ready hold never runs out before its member was told and had their time.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from broker.messages import CodeScan, Reason
from central import circulation
from central.rules import (
    Decision,
    Facts,
    InsertCheckout,
    MoveHold,
    PlaceHold,
    Policy,
    RenewCheckout,
    decide,
)
from central.storage.rows import (
    CheckoutRow,
    HoldRow,
    HoldState,
    ItemRow,
    KioskRow,
    MemberRow,
    ReservationRow,
    SessionRow,
    Standing,
    Terms,
)
from central.tokens import Label
from tests.unit.central.test_rules import NOW, ON

MEMBERS = ("M-1", "M-2", "M-3")
KIOSK = KioskRow("K-1", "S-1", False, None, 1, 600.0, return_point=True)
ITEM = ItemRow("I-1", "S-1", "Drill", 1, "available", 7)
TERMS = Terms(None, 7, max_renewals=2, buffer_hours=6, hold_hours=48)
LABEL = Label("I-1", 1)
HOUR = timedelta(hours=1)


class Circulation(RuleBasedStateMachine):
    """Scans, returns, bookings, notices, sweeps and time passing, for one item."""

    def __init__(self) -> None:
        super().__init__()
        self.now = NOW
        self.loan: CheckoutRow | None = None
        self.holds: list[HoldRow] = []  # open holds in queue order
        self.bookings: list[ReservationRow] = []
        self.next_id = 1
        self.events = 0

    # --- the in-memory library the rules read and write ---------------------------------

    def _facts(self, member_id: str | None) -> Facts:
        upcoming = sorted(
            (b for b in self.bookings if b.ends_at > self.now), key=lambda b: b.starts_at
        )
        session = None if member_id is None else SessionRow(1, "K-1", member_id, self.now + HOUR)
        return Facts(
            kiosk=KIOSK,
            session=session,
            flag=ON,
            item=ITEM,
            terms=TERMS,
            open_checkout=self.loan,
            holds=tuple(self.holds),
            reservation=upcoming[0] if upcoming else None,
            member=None if member_id is None else MemberRow(member_id, member_id, False, 5),
            member_loans=int(self.loan is not None and self.loan.member_id == member_id),
            standing=Standing(),
        )

    def _decide(self, member_id: str | None) -> Decision:
        self.events += 1
        event = CodeScan(
            event_id=f"EVENT-{self.events:06d}", kiosk_id="K-1", code="CS:X", scanned_at=self.now
        )
        decided = decide(self._facts(member_id), event, LABEL, self.now, Policy())
        assert isinstance(decided, Decision)
        for effect in decided.effects:
            self._write(effect)
        return decided

    def _write(self, effect: object) -> None:
        if isinstance(effect, InsertCheckout):
            assert self.loan is None, "lent twice"
            self.loan = CheckoutRow(self.next_id, "I-1", effect.member_id, self.now, effect.due_at)
            self.next_id += 1
        elif isinstance(effect, RenewCheckout):
            assert self.loan is not None
            renewals = self.loan.renewals + 1
            self.loan = dataclasses.replace(self.loan, due_at=effect.due_at, renewals=renewals)
        elif isinstance(effect, PlaceHold):
            self.holds.append(
                HoldRow(self.next_id, "I-1", effect.member_id, self.now, HoldState.WAITING)
            )
            self.next_id += 1
        elif isinstance(effect, MoveHold):
            self._move(effect.hold_id, effect.to)
        elif type(effect).__name__ == "CloseCheckout":
            self.loan = None

    def _move(self, hold_id: int, to: HoldState) -> None:
        (hold,) = [h for h in self.holds if h.hold_id == hold_id]
        if to is HoldState.READY:
            assert hold.state is HoldState.WAITING, "allocated twice"
            ready = dataclasses.replace(hold, state=to, ready_at=self.now, notified_at=None)
            self.holds[self.holds.index(hold)] = ready
        else:
            if to is HoldState.EXPIRED:
                assert hold.notified_at is not None
                assert hold.ready_at is not None
                assert self.now >= hold.ready_at + TERMS.hold_hours * HOUR
                assert self.now >= hold.notified_at + circulation.NOTICE_GRACE
            self.holds.remove(hold)

    def _ready(self) -> HoldRow | None:
        return circulation.ready_hold(self.holds)

    # --- rules -------------------------------------------------------------------------

    @rule(member=st.sampled_from(MEMBERS))
    def scan_in_session(self, member: str) -> None:
        loan, ready_before = self.loan, self._ready()
        expired = [h for h in self.holds if circulation.hold_expired(h, self.now, 48)]
        queued = any(h.member_id == member for h in self.holds)
        others = any(h.member_id != member for h in self.holds)
        decided = self._decide(member)
        reason = decided.reason
        if loan is not None and loan.member_id == member:
            if others:
                assert reason is Reason.HOLD_WAITING
            elif loan.renewals >= TERMS.max_renewals:
                assert reason is Reason.RENEWAL_LIMIT
            elif self.now > loan.due_at + TERMS.renew_grace_hours * HOUR:
                assert reason is Reason.TOO_OVERDUE
            else:
                assert reason in {Reason.RENEWED, Reason.RESERVED}
        elif loan is not None:
            assert reason is (Reason.ITEM_UNAVAILABLE if queued else Reason.HOLD_PLACED)
        elif ready_before is not None and ready_before not in expired:
            expected = {Reason.CHECKED_OUT, Reason.RESERVED}
            if ready_before.member_id != member:
                expected = {Reason.RESERVED}
            assert reason in expected
        else:
            assert reason in {Reason.CHECKED_OUT, Reason.RESERVED}
        if reason is Reason.CHECKED_OUT:
            assert self.loan is not None
            assert self.loan.member_id == member

    @precondition(lambda self: self.loan is not None)
    @rule()
    def return_it(self) -> None:
        waiting = [h for h in self.holds if h.state is HoldState.WAITING]
        decided = self._decide(None)
        assert self.loan is None
        assert decided.reason is (Reason.RETURNED_TO_HOLD if waiting else Reason.RETURNED)

    @rule(member=st.sampled_from(MEMBERS), starts_in=st.integers(1, 400), hours=st.integers(1, 96))
    def book(self, member: str, starts_in: int, hours: int) -> None:
        # What the service checks under the item's lock (central/services/circulation.py).
        start, end = self.now + starts_in * HOUR, self.now + (starts_in + hours) * HOUR
        buffer = TERMS.buffer_hours * HOUR
        clash = any(
            circulation.overlaps(start, end, b.starts_at, b.ends_at, buffer) for b in self.bookings
        )
        loan = self.loan
        if clash or (
            loan is not None and loan.member_id != member and loan.due_at + buffer > start
        ):
            return
        self.bookings.append(ReservationRow(self.next_id, "I-1", member, start, end))
        self.next_id += 1

    @precondition(lambda self: self._ready() is not None)
    @rule()
    def tell_the_holder(self) -> None:
        ready = self._ready()
        assert ready is not None
        if ready.notified_at is None:
            self.holds[self.holds.index(ready)] = dataclasses.replace(ready, notified_at=self.now)

    @rule()
    def sweep(self) -> None:
        moves = circulation.pass_on(self.holds, self.now, 48, free=self.loan is None)
        for hold_id in moves.expire:
            self._move(hold_id, HoldState.EXPIRED)
        if moves.ready is not None:
            self._move(moves.ready, HoldState.READY)
        again = circulation.pass_on(self.holds, self.now, 48, free=self.loan is None)
        assert not again.changed, "a second sweep finds nothing to do"

    @rule(hours=st.sampled_from([1, 6, 23, 25, 49, 24 * 8]))
    def wait(self, hours: int) -> None:
        self.now += hours * HOUR

    # --- invariants --------------------------------------------------------------------

    @invariant()
    def one_ready_hold_and_never_while_lent(self) -> None:
        ready = [h for h in self.holds if h.state is HoldState.READY]
        assert len(ready) <= 1
        assert not (ready and self.loan is not None)
        assert len({h.member_id for h in self.holds}) == len(self.holds), "one hold each"

    @invariant()
    def no_loan_runs_into_another_members_booking(self) -> None:
        if self.loan is None:
            return
        for booking in self.bookings:
            if (
                booking.member_id != self.loan.member_id
                and booking.ends_at > self.loan.checked_out_at
            ):
                assert self.loan.due_at <= booking.starts_at


TestCirculation = Circulation.TestCase
TestCirculation.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)

__all__ = ["TestCirculation"]
