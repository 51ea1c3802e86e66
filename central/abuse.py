"""Bad traffic counted per kiosk in memory: one aggregated audit row per window, and blocks.

A kiosk that sends garbage (unparsable, oversized, retained, poisoned scans) is counted
here, never with a database row per message: a flood of ten thousand messages a second
must cost central a few dictionary updates each, and the audit log one row per kiosk per
window with the counts by kind. A kiosk whose bad messages in one window reach the
threshold is blocked (``kiosks.blocked_until``, audited, a security alert), and while it
is blocked its scans beyond a small budget per window are dropped before any parsing or
database work.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from broker.ids import is_id
from broker.messages import SecurityAlert
from central.security import ALERT_AUTO_BLOCK, SYSTEM_ACTOR, security_alert_entry
from central.storage.base import AuditEntry, Tx

# The source of messages whose topic names no valid kiosk (counted together).
NO_KIOSK = "?"


class Drop(StrEnum):
    """Why a message was not decided, beyond the contract's own refusal reasons."""

    POISON = "poison"  # parsed, but deciding it failed on its own (a dead letter)
    RETAINED = "retained"  # a scan published with the retain flag: never decided
    EMPTY = "empty"  # an empty scan: nothing to decide (also our own retained clears)
    BLOCKED = "blocked"  # from a kiosk that is blocked: dropped before any work
    SHED = "shed"  # beyond the kiosk's backlog: its outbox sends it again


# Kinds that are a kiosk's own doing and count toward its block. Not BLOCKED (already
# blocked), not SHED (an honest kiosk re-sending its outbox while central is slow) and
# not EMPTY (central's own clearing of a retained scan comes back as one).
_NOT_BAD = frozenset({Drop.BLOCKED, Drop.SHED, Drop.EMPTY})


@dataclass(frozen=True, slots=True)
class AbusePolicy:
    """How bad traffic is counted, answered and blocked; ``block_after=0`` never blocks."""

    window_s: float = 10.0
    block_after: int = 50
    block_for: timedelta = timedelta(minutes=15)
    answers_per_window: int = 20
    hold_s: float = 60.0


@dataclass(slots=True)
class _Window:
    started: float
    counts: Counter[str] = field(default_factory=Counter)
    bad: int = 0
    answered: int = 0


@dataclass(frozen=True, slots=True)
class DropRow:
    """One kiosk's dropped messages over one window, by kind."""

    kiosk: str
    seconds: float
    counts: dict[str, int]

    def entry(self, at: datetime) -> AuditEntry:
        """The aggregated ``scan.dropped`` audit row."""
        total = sum(self.counts.values())
        return AuditEntry(
            at=at,
            actor=SYSTEM_ACTOR,
            action="scan.dropped",
            reason=f"{total} message(s) in {self.seconds:.0f} s",
            kiosk_id=self.kiosk if is_id(self.kiosk) else None,
            detail={"counts": dict(sorted(self.counts.items())), "total": total},
        )


class AbuseCounter:
    """Per-kiosk counts of dropped messages, in memory, with the block threshold."""

    def __init__(
        self, policy: AbusePolicy, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self._now = monotonic
        self._windows: dict[str, _Window] = {}
        self._blocked: dict[str, float] = {}  # kiosk → monotonic time the local hold ends
        self._to_block: list[str] = []
        # Told the moment a kiosk crosses the threshold (the consumer drops what it has
        # queued and shuts it out at the broker then, not at the next flush).
        self.on_block: Callable[[str], None] | None = None

    def note(self, kiosk: str, kind: str) -> bool:
        """Count one dropped message; whether it may still be answered in this window."""
        window = self._windows.get(kiosk)
        if window is None:
            window = self._windows[kiosk] = _Window(self._now())
        window.counts[kind] += 1
        if kind not in _NOT_BAD:
            window.bad += 1
            limit = self.policy.block_after
            if limit > 0 and window.bad == limit and is_id(kiosk) and not self.blocked(kiosk):
                self._to_block.append(kiosk)
                # Drop its traffic from now on; the database block follows at the flush.
                self.hold(kiosk, self.policy.block_for.total_seconds())
                if self.on_block is not None:
                    self.on_block(kiosk)
        if window.answered < self.policy.answers_per_window:
            window.answered += 1
            return True
        return False

    def admit(self, kiosk: str) -> bool:
        """Whether a message from ``kiosk`` may be looked at; False: drop it unread.

        A kiosk that is not held is always admitted. A held (blocked) one still gets its
        window's answer budget through, so it hears why (``KIOSK_BLOCKED`` from the
        database, which also notices an admin's unblock), and nothing more.
        """
        if not self.blocked(kiosk):
            return True
        window = self._windows.get(kiosk)
        if window is None:
            window = self._windows[kiosk] = _Window(self._now())
        if window.answered < self.policy.answers_per_window:
            window.answered += 1
            return True
        return False

    def blocked(self, kiosk: str) -> bool:
        """Whether ``kiosk`` is held: known to be blocked, its excess traffic dropped."""
        until = self._blocked.get(kiosk)
        if until is None:
            return False
        if until <= self._now():
            del self._blocked[kiosk]
            return False
        return True

    def hold(self, kiosk: str, seconds: float) -> None:
        """Drop ``kiosk``'s scans for ``seconds`` (a block central has seen or made)."""
        self._blocked[kiosk] = max(self._blocked.get(kiosk, 0.0), self._now() + seconds)

    def release(self, kiosk: str) -> None:
        """Forget a local hold (the database no longer blocks the kiosk)."""
        self._blocked.pop(kiosk, None)

    def counts(self, kiosk: str) -> dict[str, int]:
        """What ``kiosk`` has sent that was dropped, in its current window."""
        window = self._windows.get(kiosk)
        return {} if window is None else dict(window.counts)

    def take_blocks(self) -> list[str]:
        """Kiosks that crossed the threshold since the last call (to block in the database)."""
        blocks, self._to_block = self._to_block, []
        return blocks

    def requeue_blocks(self, kiosks: list[str]) -> None:
        """Blocks that could not be written yet: try again at the next flush."""
        self._to_block = kiosks + self._to_block

    def due(self, *, everything: bool = False) -> list[DropRow]:
        """Windows that have closed (or all of them), removed and returned as rows."""
        now = self._now()
        # Holds that ended go too, so memory follows the kiosks heard from lately.
        for kiosk in [k for k, until in self._blocked.items() if until <= now]:
            del self._blocked[kiosk]
        rows = []
        for kiosk, window in list(self._windows.items()):
            age = now - window.started
            if everything or age >= self.policy.window_s:
                del self._windows[kiosk]
                rows.append(DropRow(kiosk, age, dict(window.counts)))
        return rows


async def block(
    tx: Tx, kiosk_id: str, counts: dict[str, int], policy: AbusePolicy, now: datetime
) -> SecurityAlert | None:
    """Block ``kiosk_id`` for its bad traffic, audited as the automatic block always is."""
    until = now + policy.block_for
    if not await tx.set_blocked_until(kiosk_id, until):
        return None  # not enrolled: its scans are refused anyway
    bad = sum(n for kind, n in counts.items() if kind not in _NOT_BAD)
    why = (
        f"{bad} malformed messages in {policy.window_s:.0f} s;"
        f" blocked until {until.isoformat(timespec='seconds')}"
    )
    await tx.audit(
        AuditEntry(
            now,
            SYSTEM_ACTOR,
            "kiosk.block",
            reason=why,
            kiosk_id=kiosk_id,
            detail={"until": until.isoformat(), "dropped": dict(sorted(counts.items()))},
        )
    )
    alert = SecurityAlert(kind=ALERT_AUTO_BLOCK, kiosk_id=kiosk_id, detail=why, at=now)
    await tx.audit(security_alert_entry(alert, SYSTEM_ACTOR))
    return alert
