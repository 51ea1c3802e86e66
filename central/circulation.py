"""Circulation's pure rules: hold expiry and allocation, renewals, reservations, standing.

No I/O and no clock: :mod:`central.rules` (the walk-up), the hold sweep, the admin
services and the reminders all call these, so each rule exists once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from broker.messages import Reason
from central.storage.rows import HoldRow, HoldState, ReservationRow, Standing, Terms

# The staff alert a problem reported with an item raises (at return, or by staff).
ALERT_PROBLEM = "item.problem"
# A ready hold runs at least this long after the member was told, whenever that was.
NOTICE_GRACE = timedelta(hours=24)


def hold_expired(hold: HoldRow, now: datetime, hold_hours: int) -> bool:
    """Whether a ready hold has run out.

    Never while nobody told the member (``notified_at`` unset: the reminders set it once
    the hold-ready mail is delivered); then at ``ready_at + hold_hours`` or a day after
    the notice, whichever is later.
    """
    if hold.state is not HoldState.READY or hold.ready_at is None or hold.notified_at is None:
        return False
    return now >= hold_ends(hold.ready_at, hold.notified_at, hold_hours)


def hold_ends(ready_at: datetime, told_at: datetime, hold_hours: int) -> datetime:
    """When a ready hold told of at ``told_at`` runs out (the hold-ready mail says so)."""
    return max(ready_at + timedelta(hours=hold_hours), told_at + NOTICE_GRACE)


@dataclass(frozen=True, slots=True)
class PassOn:
    """What the item's waitlist needs now: holds to expire, and the hold to make ready."""

    expire: tuple[int, ...] = ()
    ready: int | None = None

    @property
    def changed(self) -> bool:
        """Whether anything is to be written."""
        return bool(self.expire) or self.ready is not None


def pass_on(holds: Sequence[HoldRow], now: datetime, hold_hours: int, *, free: bool) -> PassOn:
    """Expire run-out ready holds and, if the item is ``free`` (on the shelf, not lent),
    allocate it to the first waiting member when no hold is ready.

    ``holds`` are the item's open holds in queue order. Idempotent: applied twice (two
    centrals sweeping), the second finds nothing to do.
    """
    expire = tuple(h.hold_id for h in holds if hold_expired(h, now, hold_hours))
    live = [h for h in holds if h.hold_id not in expire]
    if not free or any(h.state is HoldState.READY for h in live):
        return PassOn(expire)
    waiting = [h for h in live if h.state is HoldState.WAITING]
    return PassOn(expire, waiting[0].hold_id if waiting else None)


def ready_hold(holds: Sequence[HoldRow]) -> HoldRow | None:
    """The item's allocated hold, if any."""
    return next((h for h in holds if h.state is HoldState.READY), None)


def open_hold_of(holds: Sequence[HoldRow], member_id: str) -> HoldRow | None:
    """The member's open (waiting or ready) hold among ``holds``."""
    return next((h for h in holds if h.member_id == member_id), None)


def renewal_refusal(
    *,
    due_at: datetime,
    renewals: int,
    terms: Terms,
    others_waiting: bool,
    now: datetime,
) -> Reason | None:
    """Why a loan may not be renewed now (None: it may).

    The reminders call this to decide whether a mail carries a renew link. A reservation
    is checked separately (:func:`loan_end`), since renewing shortens to fit it.
    """
    if others_waiting:
        return Reason.HOLD_WAITING
    if renewals >= terms.max_renewals:
        return Reason.RENEWAL_LIMIT
    if now > due_at + timedelta(hours=terms.renew_grace_hours):
        return Reason.TOO_OVERDUE
    return None


def loan_end(
    start: datetime,
    member_id: str,
    terms: Terms,
    reservation: ReservationRow | None,
) -> datetime | Reason:
    """When a loan starting at ``start`` is due, or ``RESERVED`` if a booking leaves too little.

    ``reservation`` is the item's next booking ending after ``start``. The member's own
    booking, once its buffer has begun, lends until its end; anyone else's (and the
    member's own, earlier) ends the loan ``buffer_hours`` before it starts, refused when
    less than ``reservation_min_hours`` would remain.
    """
    due = start + timedelta(days=terms.loan_days)
    if reservation is None:
        return due
    boundary = reservation.starts_at - timedelta(hours=terms.buffer_hours)
    if reservation.member_id == member_id and start >= boundary:
        return reservation.ends_at
    if due <= boundary:
        return due
    if boundary - start < timedelta(hours=terms.reservation_min_hours) or boundary <= start:
        return Reason.RESERVED
    return boundary


def renewal_due(
    loan_due: datetime,
    member_id: str,
    terms: Terms,
    reservation: ReservationRow | None,
    now: datetime,
) -> datetime | Reason:
    """A renewed loan's due time: one loan period from the later of now and its due time,
    cut short by a booking; ``RESERVED`` if the booking leaves no gain."""
    due = loan_end(max(now, loan_due), member_id, terms, reservation)
    if isinstance(due, Reason) or due <= loan_due:
        return Reason.RESERVED
    return due


def standing_refusal(terms: Terms, standing: Standing, now: datetime) -> Reason | None:
    """Why the member's record forbids a checkout of this category (None: it allows)."""
    if terms.needs_training and not standing.trained:
        return Reason.NEEDS_TRAINING
    if terms.needs_agreement and not standing.agreed:
        return Reason.NEEDS_AGREEMENT
    if (
        terms.overdue_block_days > 0
        and standing.oldest_due is not None
        and now - standing.oldest_due > timedelta(days=terms.overdue_block_days)
    ):
        return Reason.OVERDUE_BLOCK
    if terms.max_out is not None and standing.out_in_category >= terms.max_out:
        return Reason.LIMIT_REACHED
    return None


def overlaps(
    a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime, buffer: timedelta
) -> bool:
    """Whether two periods come closer than ``buffer`` (a loan and a booking, two bookings)."""
    return a_start < b_end + buffer and b_start < a_end + buffer


__all__ = [
    "ALERT_PROBLEM",
    "NOTICE_GRACE",
    "PassOn",
    "hold_expired",
    "loan_end",
    "open_hold_of",
    "overlaps",
    "pass_on",
    "ready_hold",
    "renewal_due",
    "renewal_refusal",
    "standing_refusal",
]
