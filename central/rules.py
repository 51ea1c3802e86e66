"""The walk-up rules as one pure function: facts about a scan in, a decision out, no I/O.

:func:`steps` is the only place a verdict's reason is chosen. It reads only the
:class:`Facts` it is given; when it needs a fact not loaded yet it yields a :class:`Need`
naming it, and :mod:`central.ledger` (the shell) loads that fact under its lock and
resumes it (:func:`decide` is the same rules in one call: the decision, or the first fact
missing). Asking one fact at a time keeps the lock order (event → kiosk → buckets → item
→ member) and means a refused scan locks no more rows than its refusal needed. The pass's
consumption is such a fact: the shell consumes it with one conditional UPDATE, so the
database, not this function, makes it single use.

Circulation (holds, renewals, reservations, loan policies) is decided here too, from the
item's terms, its waitlist, its next booking and the member's standing, with the pure
helpers of :mod:`central.circulation` (docs/circulation.md).

Adding a rule: add the fact it needs to
:class:`Facts` and :class:`Need` (the shell loads it), the check to the branch it belongs
to below, and a unit test in ``tests/unit/central/test_rules.py``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import TypeVar

from broker.messages import AnyEvent, CodeScan, ProblemReport, Reason, SessionDone
from central import circulation
from central.rollout import admits
from central.security import Bucket, Limits, is_cooling, level
from central.storage.rollout import FlagRow
from central.storage.rows import (
    CheckoutRow,
    ClosedLoan,
    HoldRow,
    HoldState,
    ItemRow,
    KioskRow,
    MemberRow,
    PassUse,
    ReservationRow,
    SessionRow,
    Standing,
    Terms,
)
from central.tokens import Label, Pass, Token

# A scan that reaches central this long after it happened is history: the member who made
# it has walked away, so it may still return an item but never opens a session or checks
# anything out (a kiosk re-sending its outbox after an outage sends such scans).
LATE_AFTER = timedelta(seconds=60)
# Kiosk clocks drift, but not by this much: a scan from the future is a forgery or a bug.
FUTURE_SKEW = timedelta(minutes=5)
# A loan returned this soon is worth a look: the member may have walked off with the item
# after someone returned it with a copy of its label (see docs/security.md).
QUICK_RETURN = timedelta(minutes=5)
# A problem report (the button pressed after a return) counts this long after the return;
# the kiosk asks for a few seconds, the rest is for a kiosk that was briefly offline.
REPORT_WINDOW = timedelta(minutes=2)

_PASS_REFUSALS = {
    PassUse.ALREADY_USED: Reason.ALREADY_USED,
    PassUse.INVALIDATED: Reason.REVOKED,
    PassUse.EXPIRED: Reason.EXPIRED,
    PassUse.UNKNOWN: Reason.UNKNOWN_CODE,
}


class _Unloaded(Enum):
    """The marker of a fact the shell has not loaded yet."""

    UNLOADED = "unloaded"


UNLOADED = _Unloaded.UNLOADED
_T = TypeVar("_T")
# A rule that may ask for facts: yields each Need, is resumed once it is loaded, returns _T.
Steps = Generator["Need", None, _T]


class Need(StrEnum):
    """A fact :func:`decide` needs next, in the order the shell may lock its rows."""

    KIOSK = "kiosk"
    COOLDOWN = "cooldown"  # the kiosk's cool-down record (a rate bucket row)
    SESSION = "session"
    KIOSK_BUCKET = "kiosk_bucket"
    MEMBER_BUCKET = "member_bucket"
    FLAG = "flag"
    RETURNED = "returned"  # the return a problem report is about (no lock)
    ITEM = "item"
    TERMS = "terms"  # the item's category policy and the library's settings (no lock)
    OPEN_CHECKOUT = "open_checkout"
    HOLDS = "holds"  # the item's open holds, in queue order (locked after the item)
    RESERVATION = "reservation"  # the item's next booking
    MEMBER = "member"
    MEMBER_LOANS = "member_loans"
    STANDING = "standing"  # training, agreement, overdue loans, loans of the category
    # A write: the shell consumes the pass and reports how it went.
    PASS_USE = "pass_use"  # noqa: S105  # a fact's name, not a password


@dataclass(slots=True)
class Facts:
    """What the database said about one scan; a field the shell has not loaded is UNLOADED.

    The member is the pass's member for a pass, the session's member for a label in a
    session; the buckets are the kiosk's and that member's rate buckets.
    """

    kiosk: KioskRow | _Unloaded | None = UNLOADED
    cooldown: Bucket | _Unloaded = UNLOADED
    session: SessionRow | _Unloaded | None = UNLOADED
    kiosk_bucket: Bucket | _Unloaded = UNLOADED
    member_bucket: Bucket | _Unloaded = UNLOADED
    flag: FlagRow | _Unloaded = UNLOADED
    returned: ClosedLoan | _Unloaded | None = UNLOADED
    item: ItemRow | _Unloaded | None = UNLOADED
    terms: Terms | _Unloaded = UNLOADED
    open_checkout: CheckoutRow | _Unloaded | None = UNLOADED
    holds: tuple[HoldRow, ...] | _Unloaded = UNLOADED
    reservation: ReservationRow | _Unloaded | None = UNLOADED
    member: MemberRow | _Unloaded | None = UNLOADED
    member_loans: int | _Unloaded = UNLOADED
    standing: Standing | _Unloaded = UNLOADED
    pass_use: PassUse | _Unloaded = UNLOADED


@dataclass(frozen=True, slots=True)
class Policy:
    """The knobs the rules read: abuse limits (None: no rate limits, no cool-downs)."""

    limits: Limits | None = None


# --- what the shell writes once the decision is taken -----------------------------------


@dataclass(frozen=True, slots=True)
class SaveBucket:
    """Store a rate bucket's level."""

    key: str
    tokens: float
    at: datetime


@dataclass(frozen=True, slots=True)
class CloseSessions:
    """Close every session open at a kiosk."""

    kiosk_id: str


@dataclass(frozen=True, slots=True)
class StartSession:
    """Open a session for the pass just consumed."""

    kiosk_id: str
    member_id: str
    pass_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ExtendSession:
    """Restart a session's idle timer."""

    session_id: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class InsertCheckout:
    """Lend an item to a member."""

    item_id: str
    member_id: str
    session_id: int
    due_at: datetime


@dataclass(frozen=True, slots=True)
class CloseCheckout:
    """Close a loan."""

    checkout_id: int
    returned_at: datetime


@dataclass(frozen=True, slots=True)
class Republish:
    """The item's availability changed: bump its sequence and broadcast it."""

    item_id: str


@dataclass(frozen=True, slots=True)
class LiftCooldown:
    """End a kiosk's automatic cool-down (a valid pass opened a session there)."""

    kiosk_id: str


@dataclass(frozen=True, slots=True)
class PlaceHold:
    """Put a member at the end of an item's waitlist."""

    item_id: str
    member_id: str


@dataclass(frozen=True, slots=True)
class MoveHold:
    """Move an open hold on (ready, fulfilled, expired); only an open hold moves."""

    hold_id: int
    to: HoldState


@dataclass(frozen=True, slots=True)
class RenewCheckout:
    """Give a loan a new due time and count the renewal."""

    checkout_id: int
    due_at: datetime


@dataclass(frozen=True, slots=True)
class OpenTicket:
    """Put an item in maintenance with a repair ticket naming the loan it came back from."""

    item_id: str
    member_id: str
    checkout_id: int
    note: str = ""


# The ticket a return of an inspection-required category opens by itself.
AWAITING_CHECK = "returned, awaiting check"


Effect = (
    SaveBucket
    | CloseSessions
    | StartSession
    | ExtendSession
    | InsertCheckout
    | CloseCheckout
    | Republish
    | LiftCooldown
    | PlaceHold
    | MoveHold
    | RenewCheckout
    | OpenTicket
)


@dataclass(slots=True)
class Decision:
    """The verdict's content and the writes it takes, in the order to apply them."""

    reason: Reason
    item_id: str | None = None
    item_name: str | None = None
    member_id: str | None = None
    member_name: str | None = None
    session_expires_at: datetime | None = None  # None: no session open after this scan
    due_at: datetime | None = None
    loan_s: float | None = None  # how long the loan a return closed lasted
    effects: list[Effect] = field(default_factory=list)

    @property
    def quick_return(self) -> bool:
        """Whether this return closed a loan short enough for staff to look at."""
        return self.loan_s is not None and self.loan_s < QUICK_RETURN.total_seconds()


def _with_session(
    reason: Reason,
    session: SessionRow | None,
    *,
    item_id: str | None = None,
    item_name: str | None = None,
    member_id: str | None = None,
    effects: list[Effect] | None = None,
) -> Decision:
    """A decision that leaves the kiosk's session as it was."""
    return Decision(
        reason,
        item_id=item_id,
        item_name=item_name,
        member_id=member_id,
        session_expires_at=None if session is None else session.expires_at,
        effects=effects or [],
    )


def steps(
    facts: Facts,
    event: AnyEvent,
    token: Token | Reason | None,
    now: datetime,
    policy: Policy,
) -> Steps[Decision]:
    """Decide ``event`` (its code already verified into ``token``) from ``facts``.

    A generator: it yields each fact it needs that ``facts`` does not hold yet (the
    shell loads it into ``facts`` and resumes it) and returns the decision. It reads and
    writes nothing else, so it runs the rules once however many facts it asks for.
    """
    decision = yield from _decide(facts, event, token, now, policy)
    return _settle(facts, event, token, now, policy, decision)


def decide(
    facts: Facts,
    event: AnyEvent,
    token: Token | Reason | None,
    now: datetime,
    policy: Policy,
) -> Decision | Need:
    """The decision ``facts`` allow, or the first fact missing to reach it."""
    walk = steps(facts, event, token, now, policy)
    try:
        return next(walk)
    except StopIteration as done:
        decision: Decision = done.value
        return decision


def _decide(
    facts: Facts,
    event: AnyEvent,
    token: Token | Reason | None,
    now: datetime,
    policy: Policy,
) -> Steps[Decision]:
    while facts.kiosk is UNLOADED:
        yield Need.KIOSK
    kiosk = facts.kiosk
    # Unknown, retired, blocked by a person or cooling down (a pass may lift a cool-down).
    if kiosk is None or kiosk.retired:
        return Decision(Reason.KIOSK_BLOCKED)
    if kiosk.blocked_until is not None and kiosk.blocked_until > now:
        if not isinstance(token, Pass):
            return Decision(Reason.KIOSK_BLOCKED)
        while facts.cooldown is UNLOADED:
            yield Need.COOLDOWN
        if not is_cooling(kiosk, facts.cooldown, now):
            return Decision(Reason.KIOSK_BLOCKED)
    if isinstance(event, ProblemReport):
        return (yield from _problem(facts, event, now))
    late = now - event.scanned_at > LATE_AFTER
    if isinstance(event, SessionDone) and not late and event.scanned_at <= now + FUTURE_SKEW:
        # "Done" ends the session; nothing is open after it.
        return Decision(Reason.SESSION_CLOSED, effects=[CloseSessions(event.kiosk_id)])
    while facts.session is UNLOADED:
        yield Need.SESSION
    session = facts.session
    if event.scanned_at > now + FUTURE_SKEW:
        return _with_session(Reason.MALFORMED, session)
    if isinstance(event, SessionDone):
        # A late "done" must not end a session someone else has opened since.
        return _with_session(Reason.SESSION_CLOSED, session)
    effects: list[Effect] = []
    limits = policy.limits
    if limits is not None:
        # After the kiosk row lock, before any item or member lock (see central.security).
        limited = yield from _rate_limited(facts, event, token, session, now, limits, effects)
        if limited:
            return _with_session(Reason.RATE_LIMITED, session, effects=effects)
    decision = yield from _code(facts, event, token, now, session, kiosk, late)
    decision.effects[:0] = effects
    return decision


def _problem(facts: Facts, event: ProblemReport, now: datetime) -> Steps[Decision]:
    """The button pressed after a return: the item goes to repair with a ticket."""
    while facts.returned is UNLOADED:
        yield Need.RETURNED
    returned = facts.returned
    if returned is None or event.scanned_at > now + FUTURE_SKEW:
        # No return of this kiosk's with that event id: a bug or a forgery.
        return Decision(Reason.MALFORMED)
    if event.scanned_at - returned.returned_at > REPORT_WINDOW:
        return Decision(Reason.NOT_CHECKED_OUT, item_id=returned.item_id)
    while facts.item is UNLOADED:
        yield Need.ITEM
    item = facts.item
    if item is None:
        return Decision(Reason.MALFORMED)
    return Decision(
        Reason.PROBLEM_REPORTED,
        item_id=item.item_id,
        item_name=item.name,
        member_id=returned.member_id,
        effects=[
            OpenTicket(item.item_id, returned.member_id, returned.checkout_id),
            Republish(item.item_id),
        ],
    )


def _member_of(token: Token | Reason | None, session: SessionRow | None) -> str | None:
    """Whose act a scan is: a pass's member, or the member whose session a label joins."""
    if isinstance(token, Pass):
        return token.member_id
    if isinstance(token, Label) and session is not None:
        return session.member_id
    return None


def _rate_limited(
    facts: Facts,
    event: CodeScan,
    token: Token | Reason | None,
    session: SessionRow | None,
    now: datetime,
    limits: Limits,
    effects: list[Effect],
) -> Steps[bool]:
    """Whether this scan exceeds its kiosk's or its member's rate.

    The kiosk pays for every scan (its throttle is where abuse comes from). The member's
    bucket is only looked at here; :func:`_settle` takes the token once the scan is
    accepted, so a replayed or forged copy of someone's pass never uses up that member's
    own rate.
    """
    if limits.kiosk_per_min > 0:
        while facts.kiosk_bucket is UNLOADED:
            yield Need.KIOSK_BUCKET
        tokens = level(facts.kiosk_bucket, now, limits.kiosk_per_min, limits.kiosk_burst)
        key = f"kiosk:{event.kiosk_id}"
        if tokens < 1.0:
            effects.append(SaveBucket(key, tokens, now))
            return True
        effects.append(SaveBucket(key, tokens - 1.0, now))
    member_id = _member_of(token, session)
    if member_id is None or limits.member_per_min <= 0:
        return False
    while facts.member_bucket is UNLOADED:
        yield Need.MEMBER_BUCKET
    return level(facts.member_bucket, now, limits.member_per_min, limits.member_burst) < 1.0


def _code(
    facts: Facts,
    event: CodeScan,
    token: Token | Reason | None,
    now: datetime,
    session: SessionRow | None,
    kiosk: KioskRow,
    late: bool,
) -> Steps[Decision]:
    """The code's own rules, once the kiosk may be served."""
    if token is None or isinstance(token, Reason):
        return _with_session(token or Reason.MALFORMED, session)
    held = yield from _flag_refusal(facts, event, token, session, late=late)
    if held is not None:
        return _with_session(held, session)
    if isinstance(token, Pass):
        if event.queued:
            # Kiosks queue returns only; a queued pass is a kiosk bug or a replay.
            return _with_session(Reason.MALFORMED, session)
        if late:
            # Left unconsumed, so the member can show it again.
            return _with_session(Reason.EXPIRED, session, member_id=token.member_id)
        return (yield from _open_session(facts, event, token, now, session, kiosk))
    if isinstance(token, Label):
        queued_or_late = event.queued or late
        return (
            yield from _label(facts, event, token, now, session, kiosk, return_only=queued_or_late)
        )
    # Enrolment codes are claimed over HTTPS, never through the scan stream.
    return _with_session(Reason.UNKNOWN_CODE, session)


def _flag_refusal(
    facts: Facts,
    event: CodeScan,
    token: Token,
    session: SessionRow | None,
    *,
    late: bool,
) -> Steps[Reason | None]:
    """``FEATURE_DISABLED`` if ``event`` is a checkout the rollout flag holds back.

    Two decisions are checkouts: a pass opening a session (member and kiosk known) and a
    label scanned in an open session (member, kiosk and item known). Returns, "done",
    queued and late scans pass whatever the flag says. The flag is read inside the
    decision's transaction, so a change is in force on every instance at its commit.
    """
    if event.queued or late:
        return None
    if isinstance(token, Pass):
        member_id, item_id = token.member_id, None
    elif isinstance(token, Label) and session is not None:
        member_id, item_id = session.member_id, token.item_id
    else:
        return None
    while facts.flag is UNLOADED:
        yield Need.FLAG
    if admits(facts.flag, member_id=member_id, kiosk_id=event.kiosk_id, item_id=item_id):
        return None
    return Reason.FEATURE_DISABLED


def _open_session(
    facts: Facts,
    event: CodeScan,
    token: Pass,
    now: datetime,
    current: SessionRow | None,
    kiosk: KioskRow,
) -> Steps[Decision]:
    while facts.member is UNLOADED:
        yield Need.MEMBER
    member = facts.member
    if member is None:
        return _with_session(Reason.UNKNOWN_CODE, current)
    if member.suspended:
        return _with_session(Reason.MEMBER_SUSPENDED, current, member_id=member.member_id)
    while facts.pass_use is UNLOADED:
        yield Need.PASS_USE
    if facts.pass_use is not PassUse.CONSUMED:
        refusal = _PASS_REFUSALS[facts.pass_use]
        return _with_session(refusal, current, member_id=member.member_id)
    expires_at = now + timedelta(seconds=kiosk.session_timeout_s)
    return Decision(
        Reason.SESSION_OPENED,
        member_id=member.member_id,
        member_name=member.name,
        session_expires_at=expires_at,
        # The next pass ends whatever session was open here.
        effects=[
            CloseSessions(event.kiosk_id),
            StartSession(event.kiosk_id, member.member_id, token.pass_id, expires_at),
        ],
    )


def _label(
    facts: Facts,
    event: CodeScan,
    token: Label,
    now: datetime,
    session: SessionRow | None,
    kiosk: KioskRow,
    *,
    return_only: bool,
) -> Steps[Decision]:
    while facts.item is UNLOADED:
        yield Need.ITEM
    item = facts.item
    if item is None:
        return _with_session(Reason.UNKNOWN_CODE, session)
    base = _with_session(Reason.MALFORMED, session, item_id=item.item_id, item_name=item.name)
    if token.version != item.label_version:
        base.reason = Reason.REVOKED
        return base
    while facts.terms is UNLOADED:
        yield Need.TERMS
    while facts.open_checkout is UNLOADED:
        yield Need.OPEN_CHECKOUT
    loan = facts.open_checkout
    if session is None or return_only:
        return (
            yield from _return(facts, base, event, item, loan, kiosk, now, return_only=return_only)
        )
    return (yield from _checkout(facts, base, item, loan, session, kiosk, now))


def _return(
    facts: Facts,
    base: Decision,
    event: CodeScan,
    item: ItemRow,
    loan: CheckoutRow | None,
    kiosk: KioskRow,
    now: datetime,
    *,
    return_only: bool,
) -> Steps[Decision]:
    if loan is None:
        # Nothing to return: the member most likely wanted it and has no session.
        base.reason = Reason.NOT_CHECKED_OUT if return_only else Reason.NO_SESSION
        return base
    refused = return_refusal(kiosk, item, loan, event.scanned_at, return_only)
    if refused is not None:
        base.reason = refused
        return base
    # A queued or late return happened when the member scanned it, not when we heard;
    # a live one is dated by our clock, so a kiosk's skewed clock refuses no one.
    returned_at = min(now, event.scanned_at) if return_only else now
    base.reason = Reason.RETURNED
    base.member_id = loan.member_id
    base.loan_s = (returned_at - loan.checked_out_at).total_seconds()
    base.effects = [CloseCheckout(loan.checkout_id, returned_at)]
    terms = _terms(facts)
    if terms.inspection_required:
        # Kits with parts wait for staff: maintenance with a ticket; its waitlist is
        # served when the ticket closes (central/services/circulation.py).
        base.effects += [
            OpenTicket(item.item_id, loan.member_id, loan.checkout_id, AWAITING_CHECK),
            Republish(item.item_id),
        ]
        return base
    # Allocate it to the first member waiting, in this transaction (at most once: the
    # item row is locked and only one hold per item may be ready).
    while facts.holds is UNLOADED:
        yield Need.HOLDS
    moves = circulation.pass_on(facts.holds, now, terms.hold_hours, free=item.state == "available")
    base.effects += _moves(moves)
    if moves.ready is not None:
        base.reason = Reason.RETURNED_TO_HOLD
    base.effects.append(Republish(item.item_id))
    return base


def _terms(facts: Facts) -> Terms:
    assert isinstance(facts.terms, Terms)
    return facts.terms


def _moves(moves: circulation.PassOn) -> list[Effect]:
    """The writes of a waitlist's pass-on."""
    effects: list[Effect] = [MoveHold(h, HoldState.EXPIRED) for h in moves.expire]
    if moves.ready is not None:
        effects.append(MoveHold(moves.ready, HoldState.READY))
    return effects


def _after(holds: tuple[HoldRow, ...], moves: circulation.PassOn) -> list[HoldRow]:
    """The open holds once ``moves`` are written (a newly ready hold shown as ready)."""
    kept = [h for h in holds if h.hold_id not in moves.expire]
    return [
        HoldRow(h.hold_id, h.item_id, h.member_id, h.placed_at, HoldState.READY)
        if h.hold_id == moves.ready
        else h
        for h in kept
    ]


def return_refusal(
    kiosk: KioskRow,
    item: ItemRow,
    checkout: CheckoutRow,
    scanned_at: datetime,
    stamped: bool,
) -> Reason | None:
    """Why a return scan may not close ``checkout`` (None: it may).

    A kiosk takes returns of its own shelf's items, or of every item if it is a return
    point: a photographed label cannot return an item from any kiosk in town. A queued or
    late return (``stamped``: dated by the kiosk) must not predate the loan it would
    close: it belongs to an earlier loan, already closed.
    """
    if not kiosk.return_point and kiosk.shelf_id != item.shelf_id:
        return Reason.WRONG_SHELF
    if stamped and scanned_at < checkout.checked_out_at:
        return Reason.NOT_CHECKED_OUT
    return None


def _checkout(
    facts: Facts,
    base: Decision,
    item: ItemRow,
    loan: CheckoutRow | None,
    session: SessionRow,
    kiosk: KioskRow,
    now: datetime,
) -> Steps[Decision]:
    """A label scanned in a session: lend, renew, or join the waitlist."""
    member_id = base.member_id = session.member_id
    if loan is not None and loan.member_id == member_id:
        return (yield from _renew(facts, base, item, loan, session, kiosk, now))
    if loan is None and item.state != "available":
        # In repair or retired: nobody can say when it is back, so no waitlist here
        # (staff may still place a hold; it is served when the repair ticket closes).
        base.reason = Reason.ITEM_UNAVAILABLE
        return base
    while facts.holds is UNLOADED:
        yield Need.HOLDS
    terms = _terms(facts)
    if loan is not None:
        return (yield from _place_hold(facts, base, item, session, kiosk, now))
    # On the shelf: a run-out ready hold passes on first, even if this scan is refused.
    moves = circulation.pass_on(facts.holds, now, terms.hold_hours, free=True)
    holds = _after(facts.holds, moves)
    passed = _moves(moves)
    ready = circulation.ready_hold(holds)

    def refuse(reason: Reason) -> Decision:
        # A refusal still writes the waitlist's pass-on it found due.
        base.reason = reason
        base.effects = [*passed, Republish(item.item_id)] if passed else []
        return base

    if ready is not None and ready.member_id != member_id:
        return refuse(Reason.RESERVED)
    while facts.reservation is UNLOADED:
        yield Need.RESERVATION
    due = circulation.loan_end(now, member_id, terms, facts.reservation)
    if isinstance(due, Reason):
        return refuse(due)
    while facts.member is UNLOADED:
        yield Need.MEMBER
    member = facts.member
    if member is None or member.suspended:
        return refuse(Reason.MEMBER_SUSPENDED)
    while facts.member_loans is UNLOADED:
        yield Need.MEMBER_LOANS
    if facts.member_loans >= member.checkout_limit:
        return refuse(Reason.LIMIT_REACHED)
    while facts.standing is UNLOADED:
        yield Need.STANDING
    refused = circulation.standing_refusal(terms, facts.standing, now)
    if refused is not None:
        return refuse(refused)
    # Each checkout restarts the session's idle timer.
    expires_at = now + timedelta(seconds=kiosk.session_timeout_s)
    base.due_at = due
    base.reason = Reason.CHECKED_OUT
    base.member_name = member.name
    base.session_expires_at = expires_at
    fulfilled: list[Effect] = []
    if ready is not None:
        fulfilled.append(MoveHold(ready.hold_id, HoldState.FULFILLED))
    base.effects = [
        *passed,
        *fulfilled,
        InsertCheckout(item.item_id, member.member_id, session.session_id, base.due_at),
        ExtendSession(session.session_id, expires_at),
        Republish(item.item_id),
    ]
    return base


def _place_hold(
    facts: Facts,
    base: Decision,
    item: ItemRow,
    session: SessionRow,
    kiosk: KioskRow,
    now: datetime,
) -> Steps[Decision]:
    """An item out on loan with someone else, scanned in a session: join its waitlist."""
    assert not isinstance(facts.holds, _Unloaded)
    if circulation.open_hold_of(facts.holds, session.member_id) is not None:
        # Already waiting: a second scan changes nothing.
        base.reason = Reason.ITEM_UNAVAILABLE
        return base
    while facts.member is UNLOADED:
        yield Need.MEMBER
    member = facts.member
    if member is None or member.suspended:
        base.reason = Reason.MEMBER_SUSPENDED
        return base
    expires_at = now + timedelta(seconds=kiosk.session_timeout_s)
    base.reason = Reason.HOLD_PLACED
    base.member_name = member.name
    base.session_expires_at = expires_at
    base.effects = [
        PlaceHold(item.item_id, member.member_id),
        ExtendSession(session.session_id, expires_at),
    ]
    return base


def _renew(
    facts: Facts,
    base: Decision,
    item: ItemRow,
    loan: CheckoutRow,
    session: SessionRow,
    kiosk: KioskRow,
    now: datetime,
) -> Steps[Decision]:
    """The member's own loan scanned in their session: renew it, or say why not."""
    terms = _terms(facts)
    while facts.holds is UNLOADED:
        yield Need.HOLDS
    others = any(h.member_id != loan.member_id for h in facts.holds)
    refused = circulation.renewal_refusal(
        due_at=loan.due_at,
        renewals=loan.renewals,
        terms=terms,
        others_waiting=others,
        now=now,
    )
    if refused is not None:
        base.reason = refused
        base.due_at = loan.due_at
        return base
    while facts.reservation is UNLOADED:
        yield Need.RESERVATION
    due = circulation.renewal_due(loan.due_at, loan.member_id, terms, facts.reservation, now)
    if isinstance(due, Reason):
        # A booking leaves no more time than the loan already has.
        base.reason = due
        base.due_at = loan.due_at
        return base
    expires_at = now + timedelta(seconds=kiosk.session_timeout_s)
    base.reason = Reason.RENEWED
    base.due_at = due
    base.session_expires_at = expires_at
    base.effects = [
        RenewCheckout(loan.checkout_id, due),
        ExtendSession(session.session_id, expires_at),
        Republish(item.item_id),
    ]
    return base


def _settle(
    facts: Facts,
    event: AnyEvent,
    token: Token | Reason | None,
    now: datetime,
    policy: Policy,
    decision: Decision,
) -> Decision:
    """After the decision: a pass during a cool-down lifts it only by opening a session;
    an accepted scan is charged to its member's rate."""
    if not isinstance(event, CodeScan):
        return decision
    kiosk = facts.kiosk
    if (
        isinstance(token, Pass)
        and isinstance(kiosk, KioskRow)
        and not isinstance(facts.cooldown, _Unloaded)
        and is_cooling(kiosk, facts.cooldown, now)
    ):
        if decision.reason is not Reason.SESSION_OPENED:
            # Only a pass that opens a session lifts a cool-down; a refused one (left
            # unconsumed, so it wrote nothing but the kiosk's bucket) leaves it in force.
            decision.reason = Reason.KIOSK_BLOCKED
            return decision
        decision.effects.append(LiftCooldown(kiosk.kiosk_id))
    limits = policy.limits
    member_id = _member_of(token, facts.session if isinstance(facts.session, SessionRow) else None)
    if (
        limits is not None
        and limits.member_per_min > 0
        and decision.reason.accepted
        and member_id
        and not isinstance(facts.member_bucket, _Unloaded)
    ):
        tokens = level(facts.member_bucket, now, limits.member_per_min, limits.member_burst)
        decision.effects.append(SaveBucket(f"member:{member_id}", tokens - 1.0, now))
    return decision


__all__ = [
    "AWAITING_CHECK",
    "FUTURE_SKEW",
    "LATE_AFTER",
    "QUICK_RETURN",
    "REPORT_WINDOW",
    "UNLOADED",
    "Decision",
    "Effect",
    "Facts",
    "MoveHold",
    "Need",
    "OpenTicket",
    "PlaceHold",
    "Policy",
    "Steps",
    "decide",
    "return_refusal",
    "steps",
]
