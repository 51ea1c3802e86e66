"""Sign-in rate limits: a token bucket per key (client address, e-mail), kept small in memory."""

from __future__ import annotations

import time
from collections import OrderedDict


class Buckets:
    """``rate`` attempts per minute after a ``burst``, per key; the oldest keys are forgotten.

    Sign-in throttling is a courtesy to the SMTP server and a brake on guessing, not a
    ledger rule, so process-local state is enough; the cap bounds memory under a flood of
    distinct keys.
    """

    def __init__(self, per_min: float, burst: int, *, max_keys: int = 10_000) -> None:
        self._rate = per_min / 60.0
        self._burst = float(burst)
        self._max = max_keys
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Spend one attempt for ``key``; False when its bucket is empty."""
        now = time.monotonic() if now is None else now
        tokens, at = self._state.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        allowed = tokens >= 1.0
        self._state[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._state) > self._max:
            self._state.popitem(last=False)
        return allowed
