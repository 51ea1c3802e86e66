"""Abuse defences inside the scan transaction: rate limits, automatic kiosk blocks, alerts.

State lives in the database (``rate_buckets``, ``kiosks.blocked_until``, ``scan_events``),
never in process memory, so every central instance sees the same limits. On PostgreSQL
the buckets are locked right after the kiosk row and before any item or member row, which
keeps the one lock order (event → kiosk → buckets → item → member).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from broker.messages import CodeScan, Reason, SecurityAlert
from central.storage.base import AuditEntry, SessionRow, Store, Tx
from central.tokens import Label, Pass, Token

# Verdicts that say "someone is trying codes that are not theirs": enough of them from one
# kiosk in a short window blocks it. Expired passes and refusals of honest members
# (limits, unavailable items, no session) do not count; neither does RATE_LIMITED, which
# a member reaching their own limit at an honest kiosk can earn.
FAILURES = (
    Reason.BAD_SIGNATURE,
    Reason.ALREADY_USED,
    Reason.REVOKED,
    Reason.UNKNOWN_CODE,
    Reason.MALFORMED,
)
ALERT_AUTO_BLOCK = "kiosk_auto_blocked"
SYSTEM_ACTOR = "system"


@dataclass(frozen=True, slots=True)
class Limits:
    """Rate limits and the automatic block; a zero rate or threshold turns that part off."""

    kiosk_per_min: float = 60.0
    kiosk_burst: int = 20
    member_per_min: float = 20.0
    member_burst: int = 10
    block_after: int = 20
    block_window: timedelta = timedelta(minutes=1)
    block_for: timedelta = timedelta(minutes=15)


async def _take(tx: Tx, key: str, now: datetime, per_min: float, burst: int) -> bool:
    """Take one token from ``key``'s bucket; False (and nothing taken) if it is empty."""
    tokens, at = await tx.bucket(key, now, float(burst))
    # A clock that went backwards refills nothing rather than draining the bucket.
    elapsed = max(0.0, (now - at).total_seconds())
    tokens = min(float(burst), tokens + elapsed * per_min / 60.0)
    if tokens < 1.0:
        await tx.save_bucket(key, tokens, now)
        return False
    await tx.save_bucket(key, tokens - 1.0, now)
    return True


async def rate_limited(
    tx: Tx,
    limits: Limits,
    event: CodeScan,
    token: Token | Reason | None,
    session: SessionRow | None,
    now: datetime,
) -> bool:
    """Whether this scan exceeds its kiosk's or its member's rate (tokens taken if not)."""
    if limits.kiosk_per_min > 0 and not await _take(
        tx, f"kiosk:{event.kiosk_id}", now, limits.kiosk_per_min, limits.kiosk_burst
    ):
        return True
    member_id = None
    if isinstance(token, Pass):
        member_id = token.member_id
    elif isinstance(token, Label) and session is not None:
        member_id = session.member_id
    if member_id is None or limits.member_per_min <= 0:
        return False
    return not await _take(
        tx, f"member:{member_id}", now, limits.member_per_min, limits.member_burst
    )


async def after_verdict(
    tx: Tx, limits: Limits, kiosk_id: str, reason: Reason, now: datetime
) -> list[SecurityAlert]:
    """Block ``kiosk_id`` if this failure tips it over the threshold; the alerts raised."""
    if limits.block_after <= 0 or reason not in FAILURES:
        return []
    since = now - limits.block_window
    failures = await tx.recent_failures(kiosk_id, since, [r.value for r in FAILURES])
    if failures < limits.block_after:
        return []
    until = now + limits.block_for
    await tx.set_blocked_until(kiosk_id, until)
    why = (
        f"{failures} refused scans in {int(limits.block_window.total_seconds())} s;"
        f" blocked until {until.isoformat(timespec='seconds')}"
    )
    await tx.audit(
        AuditEntry(
            now,
            SYSTEM_ACTOR,
            "kiosk.block",
            reason=why,
            kiosk_id=kiosk_id,
            detail={"until": until.isoformat(), "failures": failures},
        )
    )
    alert = SecurityAlert(kind=ALERT_AUTO_BLOCK, kiosk_id=kiosk_id, detail=why, at=now)
    await tx.audit(security_alert_entry(alert, SYSTEM_ACTOR))
    return [alert]


def security_alert_entry(alert: SecurityAlert, actor: str) -> AuditEntry:
    """The audit row of an alert: action ``security.alert``, reason = the alert's kind."""
    return AuditEntry(
        alert.at,
        actor,
        "security.alert",
        reason=alert.kind,
        kiosk_id=alert.kiosk_id,
        member_id=alert.member_id,
        detail={"detail": alert.detail},
    )


async def invalidate_all_passes(store: Store, now: datetime, actor: str, reason: str) -> int:
    """Invalidate every outstanding pass in one transaction, audited with the count."""
    async with store.write() as tx:
        count = await tx.invalidate_passes(now)
        await tx.audit(
            AuditEntry(now, actor, "pass.invalidate_all", reason=reason, detail={"count": count})
        )
    return count


async def set_kiosk_block(
    store: Store, kiosk_id: str, until: datetime | None, now: datetime, actor: str, reason: str
) -> bool:
    """Block (``until`` set) or unblock a kiosk by hand, audited; False if it is unknown."""
    async with store.write() as tx:
        found = await tx.set_blocked_until(kiosk_id, until)
        if found:
            await tx.audit(
                AuditEntry(
                    now,
                    actor,
                    "kiosk.block" if until is not None else "kiosk.unblock",
                    reason=reason,
                    kiosk_id=kiosk_id,
                    detail={"until": until.isoformat()} if until is not None else {},
                )
            )
    return found
