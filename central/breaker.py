"""The circuit breaker: turns checkout off by itself when scans fail or alerts pile up fleet-wide.

Every instance evaluates it from the database (scan verdicts and audit rows), so they all
judge the same window; the trip is a conditional update, so exactly one instance trips it,
audits it and raises the alert. It stays tripped until an admin resets it.

It judges what is systemic only: abuse at one kiosk is contained there (``central.security``
cools that kiosk down), so no one kiosk's errors or alerts can turn checkout off for all.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from broker import topics
from broker.messages import Reason, SecurityAlert, encode
from central import rollout
from central.clock import Clock
from central.metrics import Metrics
from central.settings import CentralSettings
from central.storage.base import Store
from central.storage.rollout import FlagRow, WindowCounts

if TYPE_CHECKING:
    from central.consumer import Publisher

log = logging.getLogger(__name__)

# A checkout error is a verdict that says the system, not the member, is at fault: a code
# that does not parse or whose kiosk sends garbage (MALFORMED, and messages too broken to
# answer at all), a signature that fails (BAD_SIGNATURE: a key ring out of step, or
# forgeries), a validly signed code naming nothing we know (UNKNOWN_CODE: lost data or a
# leaked key). A member's own refusals (EXPIRED, ALREADY_USED, LIMIT_REACHED,
# ITEM_UNAVAILABLE, NO_SESSION, …) and the abuse guards working as meant (RATE_LIMITED,
# KIOSK_BLOCKED, FEATURE_DISABLED) are not errors.
ERROR_REASONS: tuple[Reason, ...] = (Reason.MALFORMED, Reason.BAD_SIGNATURE, Reason.UNKNOWN_CODE)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When the breaker trips."""

    window: timedelta = timedelta(minutes=10)
    error_rate: float = 0.05
    min_scans: int = 50
    security_alerts: int = 3
    # The error rate counts each kiosk's errors only up to 1/min_kiosks of what trips it,
    # so it takes errors at this many kiosks (a fault of the system, or abuse everywhere at
    # once) to trip; one kiosk showing a sheet of forgeries never does.
    min_kiosks: int = 3

    @classmethod
    def from_settings(cls, settings: CentralSettings) -> BreakerPolicy:
        """The thresholds a central instance is configured with."""
        return cls(
            timedelta(seconds=settings.breaker_window_s),
            settings.breaker_error_rate,
            settings.breaker_min_scans,
            settings.breaker_security_alerts,
            settings.breaker_min_kiosks,
        )

    def counted_errors(self, counts: WindowCounts) -> int:
        """The errors that count toward the rate: each kiosk's capped at its share."""
        share = math.ceil(self.error_rate * counts.attempts / max(1, self.min_kiosks))
        return sum(min(errors, share) for errors in counts.kiosk_errors)

    def judge(self, counts: WindowCounts) -> str | None:
        """Why the breaker should trip on ``counts``, or None if all is well."""
        if counts.security_alerts >= self.security_alerts:
            return f"{counts.security_alerts} security alerts in {_span(self.window)}"
        errors = self.counted_errors(counts)
        if counts.attempts >= self.min_scans and errors > self.error_rate * counts.attempts:
            return (
                f"error rate {counts.errors / counts.attempts:.1%} over {_span(self.window)}"
                f" ({counts.errors} of {counts.attempts} code scans"
                f" at {sum(1 for e in counts.kiosk_errors if e)} kiosks)"
            )
        return None


@dataclass(frozen=True, slots=True)
class Window:
    """The breaker's view now: the flag, where its window starts, and what is in it."""

    flag: FlagRow
    since: datetime
    counts: WindowCounts


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


class Breaker:
    """Evaluates the breaker for one instance, on its own clock."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        publisher: Publisher,
        metrics: Metrics,
        policy: BreakerPolicy | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._out = publisher
        self._metrics = metrics
        self.policy = policy or BreakerPolicy()

    async def window(self) -> Window:
        """The window as the database has it now; it starts after the last reset."""
        flag = await self._store.get_flag()
        self._metrics.flag(flag.setting.mode.value, flag.setting.percent, tripped=flag.tripped)
        since = self._clock.now() - self.policy.window
        if flag.breaker_reset_at is not None and flag.breaker_reset_at > since:
            # What tripped it before the reset must not trip it again at once.
            since = flag.breaker_reset_at
        counts = await self._store.window_counts(since, [r.value for r in ERROR_REASONS])
        return Window(flag, since, counts)

    async def evaluate(self) -> bool:
        """Trip the breaker if the window says so; whether this call tripped it."""
        view = await self.window()
        if view.flag.tripped:
            return False
        why = self.policy.judge(view.counts)
        if why is None:
            return False
        now = self._clock.now()
        detail = {
            "scans": view.counts.attempts,
            "errors": view.counts.errors,
            "errors_counted": self.policy.counted_errors(view.counts),
            "kiosks_with_errors": len(view.counts.kiosk_errors),
            "security_alerts": view.counts.security_alerts,
            "since": view.since.isoformat(),
            "was": view.flag.setting.mode.value,
        }
        if not await self._store.trip_breaker(why, detail, now):
            return False  # another instance tripped it first
        self._metrics.breaker_trips.inc()
        self._metrics.flag("off", view.flag.setting.percent, tripped=True)
        log.error("circuit breaker tripped: %s; checkout is off", why)
        alert = SecurityAlert(kind="breaker.tripped", detail=f"checkout off: {why}", at=now)
        self._out.publish(topics.ALERTS, encode(alert))
        await rollout.publish_configs(self._store, self._out)
        return True

    async def run(self, every_s: float) -> None:
        """Evaluate every ``every_s`` seconds until cancelled; a failed look is retried."""
        while True:
            try:
                await self.evaluate()
            except Exception:
                # The database may be down: nothing checks out then anyway; look again.
                log.exception("circuit breaker could not evaluate")
            await asyncio.sleep(every_s)
