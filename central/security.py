"""Abuse defences' state and arithmetic: rate buckets, kiosk cool-downs, alerts.

Which scan they refuse is decided in :mod:`central.rules`; this module holds the limits,
the bucket arithmetic and the writes of a cool-down (started, lifted, set by hand).

State lives in the database (``rate_buckets``, ``kiosks.blocked_until``, ``scan_events``),
never in process memory, so every central instance sees the same limits. On PostgreSQL
the buckets are locked right after the kiosk row and before any item or member row, which
keeps the one lock order (event → kiosk → buckets → item → member).

Defences here must not be turnable against honest members: a forger at one kiosk earns
that kiosk a short cool-down (growing while the forging goes on, to a cap of minutes),
which the next member with a pass that opens a session lifts; a refused scan never costs
a member their own rate (see :mod:`central.rules`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from broker.messages import Reason, SecurityAlert
from central.storage.base import AuditEntry, KioskRow, Store, Tx

# Verdicts that say "someone is trying codes that are not theirs": enough of them from one
# kiosk in a short window cools it down. Expired passes and refusals of honest members
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
# The cool-down's state rides in ``rate_buckets`` (no schema change): ``tokens`` holds the
# strike count and ``updated_at`` the end of the cool-down it set, or 0 and the moment a
# pass or a person lifted it (failures before that are forgiven), or -1 for a kiosk never
# cooled down. A kiosk whose ``blocked_until`` equals the stored end is cooling down; any
# other block was set by a person.
COOLDOWN_KEY = "cooldown:"
_NEVER = -1.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Rate limits and the automatic cool-down; a zero rate or threshold turns that part off."""

    kiosk_per_min: float = 60.0
    kiosk_burst: int = 20
    member_per_min: float = 20.0
    member_burst: int = 10
    block_after: int = 20
    block_window: timedelta = timedelta(minutes=1)
    block_for: timedelta = timedelta(minutes=2)  # the longest cool-down (the cap)
    block_first: timedelta = timedelta(seconds=5)  # the first cool-down; each next one doubles
    block_forget: timedelta = timedelta(minutes=10)  # quiet this long: the next starts again

    def cooldown(self, strikes: int) -> timedelta:
        """How long the ``strikes``-th cool-down in a row lasts."""
        doublings: int = max(0, min(strikes - 1, 30))
        grown = self.block_first * float(1 << doublings)
        return min(self.block_for, grown)


Bucket = tuple[float, datetime]  # a rate bucket's stored level and when it was stored


def level(bucket: Bucket, now: datetime, per_min: float, burst: int) -> float:
    """The tokens in a rate bucket now, refilled at ``per_min`` up to ``burst``."""
    tokens, at = bucket
    # A clock that went backwards refills nothing rather than draining the bucket.
    elapsed = max(0.0, (now - at).total_seconds())
    return min(float(burst), tokens + elapsed * per_min / 60.0)


def is_cooling(kiosk: KioskRow, cooldown: Bucket, now: datetime) -> bool:
    """Whether ``kiosk``'s block is an automatic cool-down (not a person's block).

    ``cooldown`` is the kiosk's ``COOLDOWN_KEY`` bucket: the cool-down that set the block
    stored its end there, a person's block did not.
    """
    if kiosk.blocked_until is None or kiosk.blocked_until <= now:
        return False
    strikes, ends = cooldown
    return strikes >= 1 and ends == kiosk.blocked_until


async def load_cooldown(tx: Tx, kiosk_id: str, now: datetime) -> Bucket:
    """The kiosk's cool-down record (created empty), locked for this transaction."""
    return await tx.bucket(COOLDOWN_KEY + kiosk_id, now, _NEVER)


async def lift_cooldown(tx: Tx, kiosk_id: str, now: datetime) -> None:
    """End a cool-down because a member's valid pass opened a session there."""
    await tx.set_blocked_until(kiosk_id, None)
    await tx.save_bucket(COOLDOWN_KEY + kiosk_id, 0.0, now)
    await tx.audit(
        AuditEntry(
            now,
            SYSTEM_ACTOR,
            "kiosk.unblock",
            reason="cool-down lifted: a valid pass opened a session",
            kiosk_id=kiosk_id,
        )
    )


async def after_verdict(
    tx: Tx, limits: Limits, kiosk_id: str, reason: Reason, now: datetime
) -> list[SecurityAlert]:
    """Cool ``kiosk_id`` down if this failure tips it over the threshold; the alerts raised."""
    if limits.block_after <= 0 or reason not in FAILURES:
        return []
    since = now - limits.block_window
    failures = await tx.recent_failures(kiosk_id, since, [r.value for r in FAILURES])
    if failures < limits.block_after:
        return []
    strikes, ended = await tx.bucket(COOLDOWN_KEY + kiosk_id, now, _NEVER)
    if strikes >= 0 and ended > since:
        # Failures before the last cool-down ended (or was lifted) have been dealt with.
        # (recent_failures counts after ``since``; a scan at the very instant counts too)
        after = ended - timedelta(microseconds=1)
        failures = await tx.recent_failures(kiosk_id, after, [r.value for r in FAILURES])
        if failures < limits.block_after:
            return []
    why = f"{failures} refused scans in {int(limits.block_window.total_seconds())} s"
    return await cool_down(
        tx, limits, kiosk_id, now, why, strikes=max(0, int(strikes)), ended=ended
    )


async def cool_down(
    tx: Tx,
    limits: Limits,
    kiosk_id: str,
    now: datetime,
    why: str,
    *,
    strikes: int | None = None,
    ended: datetime | None = None,
) -> list[SecurityAlert]:
    """Start ``kiosk_id``'s next cool-down inside ``tx``: blocked, audited, and on the first
    of a run a security alert (the caller publishes it); the alerts raised."""
    if strikes is None or ended is None:
        stored, ended = await tx.bucket(COOLDOWN_KEY + kiosk_id, now, _NEVER)
        strikes = max(0, int(stored))
    if strikes >= 1 and now - ended > limits.block_forget:
        strikes = 0  # quiet long enough: the next run starts short again
    strikes += 1
    until = now + limits.cooldown(strikes)
    if not await tx.set_blocked_until(kiosk_id, until):
        return []
    await tx.save_bucket(COOLDOWN_KEY + kiosk_id, float(strikes), until)
    seconds = int((until - now).total_seconds())
    detail = f"{why}; cool-down {strikes} of this run: {seconds} s, until {until:%H:%M:%S} UTC"
    await tx.audit(
        AuditEntry(
            now,
            SYSTEM_ACTOR,
            "kiosk.block",
            reason=detail,
            kiosk_id=kiosk_id,
            detail={"until": until.isoformat(), "strikes": strikes, "seconds": seconds},
        )
    )
    if strikes > 1:
        # Staff heard at the first one; the audit row records each next, longer one.
        return []
    alert = SecurityAlert(kind=ALERT_AUTO_BLOCK, kiosk_id=kiosk_id, detail=detail, at=now)
    await tx.audit(security_alert_entry(alert, SYSTEM_ACTOR))
    return [alert]


async def auto_block(
    store: Store, limits: Limits, kiosk_id: str, now: datetime, why: str
) -> list[SecurityAlert]:
    """Cool a kiosk down from outside a scan (e.g. the consumer finding it flooding), in its
    own transaction; the alerts to publish on ``cs/v1/alerts`` and count."""
    async with store.write() as tx:
        # The kiosk row first, as in a scan's transaction, so the two never deadlock.
        if await tx.kiosk(kiosk_id) is None:
            return []
        return await cool_down(tx, limits, kiosk_id, now, why)


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
    """Block (``until`` set) or unblock a kiosk by hand, audited; False if it is unknown.

    Unblocking also ends any cool-down run, so the next one starts short again.
    """
    async with store.write() as tx:
        found = await tx.set_blocked_until(kiosk_id, until)
        if found:
            if until is None:
                await tx.save_bucket(COOLDOWN_KEY + kiosk_id, 0.0, now)
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
