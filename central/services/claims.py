"""Guards for the open enrolment route: a rate per caller and overall, refusals tallied.

``/enrol/claim`` needs no token (a fresh kiosk has none), so anyone on the network can
call it. Each caller address gets a small bucket and all callers share a larger one, kept
in this process (a limit per instance is enough to keep one client from costing central
work; the signature check and single use in the database are what keep claims honest).
Refused claims are counted, and each window's counts are written as one audit row
(``kiosk.claims_refused``) instead of a row per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from central.clock import Clock
from central.storage.base import AuditEntry, Store

SYSTEM_ACTOR = "system:enrol"


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: datetime


@dataclass(frozen=True, slots=True)
class ClaimLimits:
    """How often claims are accepted for checking; a kiosk claims once in its life."""

    per_caller_per_min: float = 6.0
    per_caller_burst: int = 5
    overall_per_min: float = 120.0
    overall_burst: int = 30
    tally_window: timedelta = timedelta(minutes=1)
    callers_kept: int = 10_000  # bucket memory is bounded whoever calls


@dataclass(slots=True)
class ClaimGate:
    """Admits claims at a bounded rate and tallies refusals into one audit row per window."""

    store: Store
    clock: Clock
    limits: ClaimLimits = field(default_factory=ClaimLimits)
    _callers: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict)
    _overall: _Bucket | None = None
    _tally: Counter[str] = field(default_factory=Counter)
    _sources: set[str] = field(default_factory=set)
    _since: datetime | None = None
    _flusher: asyncio.Task[None] | None = None

    def admit(self, caller: str) -> bool:
        """Whether a claim from ``caller`` may be checked now (a token taken if so)."""
        now = self.clock.now()
        lim = self.limits
        bucket = self._callers.pop(caller, None) or _Bucket(float(lim.per_caller_burst), now)
        self._callers[caller] = bucket  # most recent last
        while len(self._callers) > lim.callers_kept:
            self._callers.popitem(last=False)
        if self._overall is None:
            self._overall = _Bucket(float(lim.overall_burst), now)
        mine = _refill(bucket, now, lim.per_caller_per_min, lim.per_caller_burst)
        overall = _refill(self._overall, now, lim.overall_per_min, lim.overall_burst)
        if mine < 1.0 or overall < 1.0:
            return False
        bucket.tokens -= 1.0
        self._overall.tokens -= 1.0
        return True

    async def refused(self, caller: str, reason: str) -> None:
        """Count one refused claim; its window's audit row is written when the window ends
        (by a timer, or by the first refusal after it)."""
        now = self.clock.now()
        if self._since is not None and now - self._since >= self.limits.tally_window:
            await self.flush()
        if self._since is None:
            self._since = now
        self._tally[reason] += 1
        if len(self._sources) < 1000:
            self._sources.add(caller)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later(), name="claims-tally")

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.limits.tally_window.total_seconds())
        await self.flush()

    async def flush(self) -> None:
        """Write the tally so far as one audit row (nothing if nothing was refused)."""
        if not self._tally or self._since is None:
            return
        counts, sources, since = dict(self._tally), len(self._sources), self._since
        self._tally.clear()
        self._sources.clear()
        self._since = None
        now = self.clock.now()
        async with self.store.write() as tx:
            await tx.audit(
                AuditEntry(
                    now,
                    SYSTEM_ACTOR,
                    "kiosk.claims_refused",
                    reason=f"{sum(counts.values())} enrolment claims refused",
                    detail={
                        "counts": counts,
                        "callers": sources,
                        "since": since.isoformat(),
                        "until": now.isoformat(),
                    },
                )
            )

    async def close(self) -> None:
        """Write what is tallied (at shutdown) and stop the timer."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()


def _refill(bucket: _Bucket, now: datetime, per_min: float, burst: int) -> float:
    elapsed = max(0.0, (now - bucket.at).total_seconds())
    bucket.tokens = min(float(burst), bucket.tokens + elapsed * per_min / 60.0)
    bucket.at = now
    return bucket.tokens
