"""The scan ledger's shell: load a scan's facts under their locks, let the rules decide, write.

Every verdict's reason is chosen by :func:`central.rules.steps`; this module only loads
the facts it asks for (in the lock order the backends keep: event → kiosk → buckets →
item → member), applies the writes it returns, and records the verdict once. The
database's own constraints back every rule (one open checkout per item, one session per
pass, one verdict per event id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from broker.messages import (
    AnyEvent,
    Availability,
    CodeScan,
    ProblemReport,
    Reason,
    SecurityAlert,
    Verdict,
    encode,
)
from central import circulation, rules, security
from central.rules import (
    CloseCheckout,
    CloseSessions,
    Decision,
    Effect,
    ExtendSession,
    Facts,
    InsertCheckout,
    LiftCooldown,
    MoveHold,
    Need,
    OpenTicket,
    PlaceHold,
    Policy,
    RenewCheckout,
    Republish,
    SaveBucket,
    StartSession,
)
from central.storage.base import AuditEntry, SessionRow, Tx
from central.storage.rows import ClosedLoan, Terms
from central.tokens import Label, Pass, Token, fingerprint

# Kept importable from here: tests and docs name them as the ledger's windows.
LATE_AFTER = rules.LATE_AFTER
FUTURE_SKEW = rules.FUTURE_SKEW
QUICK_RETURN = rules.QUICK_RETURN


@dataclass(slots=True)
class Outcome:
    """What applying one event produced: the verdict and any availability changes."""

    verdict: Verdict
    payload: bytes  # the verdict's wire bytes, encoded once
    changed: list[Availability] = field(default_factory=list)
    replayed: bool = False
    member_id: str | None = None  # for logs: whose scan it was, where known
    alerts: list[SecurityAlert] = field(default_factory=list)


async def apply(
    tx: Tx,
    event: AnyEvent,
    token: Token | Reason | None,
    now: datetime,
    limits: security.Limits | None = None,
) -> Outcome:
    """Decide ``event`` (its code already verified into ``token``) and record it once."""
    previous = await tx.find_verdict(event.kiosk_id, event.event_id)
    if previous is not None:
        # A redelivered event: same verdict, no effect.
        return Outcome(previous, encode(previous), replayed=True)
    policy = Policy(limits)
    facts = Facts()
    walk = rules.steps(facts, event, token, now, policy)
    try:
        need = next(walk)
        while True:
            await _load(tx, need, facts, event, token, now, policy)
            need = walk.send(None)
    except StopIteration as done:
        decided: Decision = done.value
    changed = await _write(tx, decided.effects, event, now)
    verdict = Verdict(
        event_id=event.event_id,
        kiosk_id=event.kiosk_id,
        reason=decided.reason,
        accepted=decided.reason.accepted,
        item_id=decided.item_id,
        item_name=decided.item_name,
        member_name=decided.member_name,
        session_open=decided.session_expires_at is not None,
        session_expires_at=decided.session_expires_at,
        due_at=decided.due_at,
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
            reason=decided.reason.value,
            kiosk_id=event.kiosk_id,
            member_id=decided.member_id,
            item_id=decided.item_id,
            event_id=event.event_id,
            detail=_detail(code_hash, decided),
        )
    )
    alerts = []
    if limits is not None:
        alerts = await security.after_verdict(tx, limits, event.kiosk_id, decided.reason, now)
    if decided.reason is Reason.PROBLEM_REPORTED:
        # Staff hear of it the way they hear of security alerts: metric, alerts topic.
        alerts.append(
            SecurityAlert(
                kind=circulation.ALERT_PROBLEM,
                kiosk_id=event.kiosk_id,
                member_id=decided.member_id,
                detail=f"problem reported at return: item {decided.item_id}",
                at=now,
            )
        )
    return Outcome(verdict, payload, changed, alerts=alerts, member_id=decided.member_id)


def _item_id(token: Token | Reason | None, facts: Facts) -> str:
    """The item a scan's item facts are about: the label's, or the reported return's."""
    if isinstance(token, Label):
        return token.item_id
    assert isinstance(facts.returned, ClosedLoan)
    return facts.returned.item_id


def _member_id(token: Token | Reason | None, facts: Facts) -> str:
    """The member a scan's member facts are about (the rules ask only when there is one)."""
    if isinstance(token, Pass):
        return token.member_id
    assert isinstance(token, Label)
    assert isinstance(facts.session, SessionRow)
    return facts.session.member_id


async def _load(
    tx: Tx,
    need: Need,
    facts: Facts,
    event: AnyEvent,
    token: Token | Reason | None,
    now: datetime,
    policy: Policy,
) -> None:
    """Load the one fact the rules asked for (locking its row where the backend can)."""
    kiosk_id = event.kiosk_id
    if need is Need.KIOSK:
        facts.kiosk = await tx.kiosk(kiosk_id)
    elif need is Need.COOLDOWN:
        facts.cooldown = await security.load_cooldown(tx, kiosk_id, now)
    elif need is Need.SESSION:
        facts.session = await tx.open_session(kiosk_id, now)
    elif need is Need.KIOSK_BUCKET:
        assert policy.limits is not None
        full = float(policy.limits.kiosk_burst)
        facts.kiosk_bucket = await tx.bucket(f"kiosk:{kiosk_id}", now, full)
    elif need is Need.MEMBER_BUCKET:
        assert policy.limits is not None
        full = float(policy.limits.member_burst)
        key = f"member:{_member_id(token, facts)}"
        facts.member_bucket = await tx.bucket(key, now, full)
    elif need is Need.FLAG:
        facts.flag = await tx.rollout_flag()
    elif need is Need.RETURNED:
        assert isinstance(event, ProblemReport)
        facts.returned = await tx.closed_by(kiosk_id, event.return_event_id)
    elif need is Need.ITEM:
        facts.item = await tx.item(_item_id(token, facts))
    elif need in _ITEM_NEEDS:
        assert isinstance(token, Label)
        await _load_item_fact(tx, need, facts, token.item_id, now)
    elif need in _MEMBER_NEEDS:
        await _load_member_fact(tx, need, facts, _member_id(token, facts), now)
    elif need is Need.PASS_USE:
        # The atomic step: one conditional UPDATE, so only the first caller consumes it.
        assert isinstance(token, Pass)
        facts.pass_use = await tx.consume_pass(token.pass_id, token.member_id, kiosk_id, now)


# The facts about the labelled item beyond its row: its terms, loan, waitlist and booking.
_ITEM_NEEDS = frozenset({Need.TERMS, Need.OPEN_CHECKOUT, Need.HOLDS, Need.RESERVATION})


async def _load_item_fact(tx: Tx, need: Need, facts: Facts, item_id: str, now: datetime) -> None:
    if need is Need.TERMS:
        facts.terms = await tx.item_terms(item_id)
    elif need is Need.OPEN_CHECKOUT:
        facts.open_checkout = await tx.open_checkout(item_id)
    elif need is Need.HOLDS:
        facts.holds = await tx.item_holds(item_id)
    elif need is Need.RESERVATION:
        facts.reservation = await tx.next_reservation(item_id, now)


# The facts about the member beyond the rate bucket: their row, loans and standing.
_MEMBER_NEEDS = frozenset({Need.MEMBER, Need.MEMBER_LOANS, Need.STANDING})


async def _load_member_fact(
    tx: Tx, need: Need, facts: Facts, member_id: str, now: datetime
) -> None:
    if need is Need.MEMBER:
        facts.member = await tx.member(member_id)
    elif need is Need.MEMBER_LOANS:
        facts.member_loans = await tx.open_checkout_count(member_id)
    elif need is Need.STANDING:
        assert isinstance(facts.terms, Terms)
        facts.standing = await tx.standing(member_id, facts.terms.category, now)


async def _write(
    tx: Tx, effects: list[Effect], event: AnyEvent, now: datetime
) -> list[Availability]:
    """Apply the decision's writes in order; the availability messages they changed."""
    changed: list[Availability] = []
    for effect in effects:
        if isinstance(effect, SaveBucket):
            await tx.save_bucket(effect.key, effect.tokens, effect.at)
        elif isinstance(effect, CloseSessions):
            await tx.close_sessions(effect.kiosk_id, now)
        elif isinstance(effect, StartSession):
            await tx.start_session(
                effect.kiosk_id, effect.member_id, effect.pass_id, now, effect.expires_at
            )
        elif isinstance(effect, ExtendSession):
            await tx.extend_session(effect.session_id, effect.expires_at)
        elif isinstance(effect, InsertCheckout):
            await tx.insert_checkout(
                effect.item_id,
                effect.member_id,
                effect.session_id,
                event.kiosk_id,
                event.event_id,
                now,
                effect.due_at,
            )
        elif isinstance(effect, CloseCheckout):
            await tx.close_checkout(
                effect.checkout_id, effect.returned_at, event.event_id, event.kiosk_id
            )
        elif isinstance(effect, Republish):
            changed.append(await tx.availability(effect.item_id, now, bump=True))
        elif isinstance(effect, LiftCooldown):
            await security.lift_cooldown(tx, effect.kiosk_id, now)
        else:
            await _write_circulation(tx, effect, event, now)
    return changed


async def _write_circulation(tx: Tx, effect: Effect, event: AnyEvent, now: datetime) -> None:
    """Apply one of circulation's writes (holds, renewals, tickets)."""
    if isinstance(effect, PlaceHold):
        await tx.place_hold(effect.item_id, effect.member_id, "kiosk", now)
    elif isinstance(effect, MoveHold):
        await tx.move_hold(effect.hold_id, effect.to, now)
    elif isinstance(effect, RenewCheckout):
        await tx.renew_checkout(effect.checkout_id, effect.due_at)
    elif isinstance(effect, OpenTicket):
        await tx.open_ticket(
            effect.item_id,
            now,
            kiosk_id=event.kiosk_id,
            member_id=effect.member_id,
            checkout_id=effect.checkout_id,
            event_id=event.event_id,
            note=effect.note,
        )
        await tx.set_state(effect.item_id, "maintenance")


def _detail(code_hash: str | None, decision: Decision) -> dict[str, object]:
    detail: dict[str, object] = {"code": code_hash} if code_hash else {}
    moved = {str(e.hold_id): e.to.value for e in decision.effects if isinstance(e, MoveHold)}
    if moved:
        # Every hold allocated, fulfilled or expired by a scan is in the audit log.
        detail["holds"] = moved
    if decision.loan_s is not None:
        detail["loan_s"] = round(decision.loan_s)
        if decision.quick_return:
            # Staff filter the audit for these (GET /audit, cs-admin audit export).
            detail["quick_return"] = True
    return detail
