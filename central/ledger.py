"""The walk-up rules: one kiosk event in, one verdict out, applied inside a transaction.

This is the only place that decides checkouts, returns and sessions. It speaks to the
database through :class:`central.storage.Tx`, whose backends take the locks, and the
database's own constraints back every rule here (one open checkout per item, one session
per pass, one verdict per event id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from broker.messages import (
    Availability,
    CodeScan,
    Reason,
    SecurityAlert,
    SessionDone,
    Verdict,
    encode,
)
from central import rollout, security
from central.storage.base import (
    AuditEntry,
    CheckoutRow,
    ItemRow,
    KioskRow,
    PassUse,
    SessionRow,
    Tx,
)
from central.tokens import Label, Pass, Token, fingerprint

# A scan that reaches central this long after it happened is history: the member who made
# it has walked away, so it may still return an item but never opens a session or checks
# anything out (a kiosk re-sending its outbox after an outage sends such scans).
LATE_AFTER = timedelta(seconds=60)
# Kiosk clocks drift, but not by this much: a scan from the future is a forgery or a bug.
FUTURE_SKEW = timedelta(minutes=5)

# A loan returned this soon is worth a look: the member may have walked off with the item
# after someone returned it with a copy of its label (see docs/security.md).
QUICK_RETURN = timedelta(minutes=5)

_PASS_REFUSALS = {
    PassUse.ALREADY_USED: Reason.ALREADY_USED,
    PassUse.INVALIDATED: Reason.REVOKED,
    PassUse.EXPIRED: Reason.EXPIRED,
    PassUse.UNKNOWN: Reason.UNKNOWN_CODE,
}


@dataclass(slots=True)
class Outcome:
    """What applying one event produced: the verdict and any availability changes."""

    verdict: Verdict
    payload: bytes  # the verdict's wire bytes, encoded once
    changed: list[Availability] = field(default_factory=list)
    replayed: bool = False
    member_id: str | None = None  # for logs: whose scan it was, where known
    alerts: list[SecurityAlert] = field(default_factory=list)


@dataclass(slots=True)
class _Draft:
    reason: Reason
    item_id: str | None = None
    item_name: str | None = None
    member_id: str | None = None
    member_name: str | None = None
    session: SessionRow | None = None
    due_at: datetime | None = None
    changed: list[Availability] = field(default_factory=list)
    loan_s: float | None = None  # how long the loan a return closed lasted


async def apply(
    tx: Tx,
    event: CodeScan | SessionDone,
    token: Token | Reason | None,
    now: datetime,
    limits: security.Limits | None = None,
) -> Outcome:
    """Decide ``event`` (its code already verified into ``token``) and record it once."""
    previous = await tx.find_verdict(event.kiosk_id, event.event_id)
    if previous is not None:
        # A redelivered event: same verdict, no effect.
        return Outcome(previous, encode(previous), replayed=True)
    draft = await _decide(tx, event, token, now, limits)
    # Lifts a cool-down (or keeps it) and charges the member's rate only when accepted.
    draft.reason = await security.settle(tx, limits, event, token, draft.session, draft.reason, now)
    session = draft.session
    verdict = Verdict(
        event_id=event.event_id,
        kiosk_id=event.kiosk_id,
        reason=draft.reason,
        accepted=draft.reason.accepted,
        item_id=draft.item_id,
        item_name=draft.item_name,
        member_name=draft.member_name,
        session_open=session is not None,
        session_expires_at=None if session is None else session.expires_at,
        due_at=draft.due_at,
        decided_at=now,
    )
    code_hash = fingerprint(event.code) if isinstance(event, CodeScan) else None
    payload = encode(verdict)
    await tx.save_verdict(verdict, code_hash, event.scanned_at, payload)
    await tx.audit(
        AuditEntry(
            at=now,
            actor=f"kiosk:{event.kiosk_id}",
            action=f"scan.{event.type}",
            reason=draft.reason.value,
            kiosk_id=event.kiosk_id,
            member_id=draft.member_id,
            item_id=draft.item_id,
            event_id=event.event_id,
            detail=_detail(code_hash, draft.loan_s),
        )
    )
    alerts = []
    if limits is not None:
        alerts = await security.after_verdict(tx, limits, event.kiosk_id, draft.reason, now)
    return Outcome(verdict, payload, draft.changed, alerts=alerts, member_id=draft.member_id)


async def _decide(
    tx: Tx,
    event: CodeScan | SessionDone,
    token: Token | Reason | None,
    now: datetime,
    limits: security.Limits | None = None,
) -> _Draft:
    kiosk = await tx.kiosk(event.kiosk_id)
    # Unknown, retired, blocked by a person or cooling down (a pass may lift a cool-down).
    if blocked := await security.kiosk_refusal(tx, kiosk, token, now):
        return _Draft(blocked)
    assert kiosk is not None  # kiosk_refusal refuses a missing kiosk
    idle = timedelta(seconds=kiosk.session_timeout_s)
    if event.scanned_at > now + FUTURE_SKEW:
        return _Draft(Reason.MALFORMED, session=await tx.open_session(event.kiosk_id, now))
    late = now - event.scanned_at > LATE_AFTER
    if isinstance(event, SessionDone):
        if not late:
            await tx.close_sessions(event.kiosk_id, now)
        # A late "done" must not end a session someone else has opened since.
        return _Draft(Reason.SESSION_CLOSED, session=await tx.open_session(event.kiosk_id, now))
    session = await tx.open_session(event.kiosk_id, now)
    # After the kiosk row lock, before any item or member lock (see central.security).
    if limits is not None and await security.rate_limited(tx, limits, event, token, session, now):
        return _Draft(Reason.RATE_LIMITED, session=session)
    if token is None or isinstance(token, Reason):
        return _Draft(token or Reason.MALFORMED, session=session)
    if held := await rollout.refusal(tx, event, token, session, late=late):
        return _Draft(held, session=session)
    if isinstance(token, Pass):
        if event.queued:
            # Kiosks queue returns only; a queued pass is a kiosk bug or a replay.
            return _Draft(Reason.MALFORMED, session=session)
        if late:
            # Left unconsumed, so the member can show it again.
            return _Draft(Reason.EXPIRED, member_id=token.member_id, session=session)
        return await _open_session(tx, event, token, now, idle, session)
    if isinstance(token, Label):
        return await _label(
            tx, event, token, now, idle, session, kiosk, return_only=event.queued or late
        )
    # Enrolment codes are claimed over HTTPS, never through the scan stream.
    return _Draft(Reason.UNKNOWN_CODE, session=session)


async def _open_session(
    tx: Tx,
    event: CodeScan,
    token: Pass,
    now: datetime,
    idle: timedelta,
    current: SessionRow | None,
) -> _Draft:
    member = await tx.member(token.member_id)
    if member is None:
        return _Draft(Reason.UNKNOWN_CODE, session=current)
    if member.suspended:
        return _Draft(Reason.MEMBER_SUSPENDED, member_id=member.member_id, session=current)
    use = await tx.consume_pass(token.pass_id, member.member_id, event.kiosk_id, now)
    if use is not PassUse.CONSUMED:
        return _Draft(_PASS_REFUSALS[use], member_id=member.member_id, session=current)
    # The next pass ends whatever session was open here.
    await tx.close_sessions(event.kiosk_id, now)
    session = await tx.start_session(
        event.kiosk_id, member.member_id, token.pass_id, now, now + idle
    )
    return _Draft(
        Reason.SESSION_OPENED, member_id=member.member_id, member_name=member.name, session=session
    )


async def _label(
    tx: Tx,
    event: CodeScan,
    token: Label,
    now: datetime,
    idle: timedelta,
    session: SessionRow | None,
    kiosk: KioskRow,
    *,
    return_only: bool,
) -> _Draft:
    item = await tx.item(token.item_id)
    if item is None:
        return _Draft(Reason.UNKNOWN_CODE, session=session)
    base = _Draft(Reason.MALFORMED, item_id=item.item_id, item_name=item.name, session=session)
    if token.version != item.label_version:
        base.reason = Reason.REVOKED
        return base
    open_checkout = await tx.open_checkout(item.item_id)
    if session is None or return_only:
        if open_checkout is None:
            # Nothing to return: the member most likely wanted it and has no session.
            base.reason = Reason.NOT_CHECKED_OUT if return_only else Reason.NO_SESSION
            return base
        refused = return_refusal(kiosk, item, open_checkout, event.scanned_at, now, return_only)
        if refused is not None:
            base.reason = refused
            return base
        # A queued or late return happened when the member scanned it, not when we heard;
        # a live one is dated by our clock, so a kiosk's skewed clock refuses no one.
        returned_at = min(now, event.scanned_at) if return_only else now
        await tx.close_checkout(
            open_checkout.checkout_id, returned_at, event.event_id, event.kiosk_id
        )
        base.reason = Reason.RETURNED
        base.member_id = open_checkout.member_id
        base.loan_s = (returned_at - open_checkout.checked_out_at).total_seconds()
        base.changed.append(await tx.availability(item.item_id, now, bump=True))
        return base
    base.member_id = session.member_id
    if item.state != "available" or open_checkout is not None:
        base.reason = Reason.ITEM_UNAVAILABLE
        return base
    member = await tx.member(session.member_id)
    if member is None or member.suspended:
        base.reason = Reason.MEMBER_SUSPENDED
        return base
    if await tx.open_checkout_count(member.member_id) >= member.checkout_limit:
        base.reason = Reason.LIMIT_REACHED
        return base
    base.due_at = now + timedelta(days=item.loan_days)
    await tx.insert_checkout(
        item.item_id,
        member.member_id,
        session.session_id,
        event.kiosk_id,
        event.event_id,
        now,
        base.due_at,
    )
    # Each checkout restarts the session's idle timer.
    base.session = SessionRow(session.session_id, session.kiosk_id, session.member_id, now + idle)
    await tx.extend_session(session.session_id, now + idle)
    base.reason = Reason.CHECKED_OUT
    base.member_name = member.name
    base.changed.append(await tx.availability(item.item_id, now, bump=True))
    return base


def return_refusal(
    kiosk: KioskRow,
    item: ItemRow,
    checkout: CheckoutRow,
    scanned_at: datetime,
    now: datetime,
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


def _detail(code_hash: str | None, loan_s: float | None) -> dict[str, object]:
    detail: dict[str, object] = {"code": code_hash} if code_hash else {}
    if loan_s is not None:
        detail["loan_s"] = round(loan_s)
        if loan_s < QUICK_RETURN.total_seconds():
            # Staff filter the audit for these (GET /audit, cs-admin audit export).
            detail["quick_return"] = True
    return detail
