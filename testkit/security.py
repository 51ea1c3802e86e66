"""Settings that turn central's abuse defences and circuit breaker off, for machine-made load."""

from typing import Any

# Load tests and benchmarks send hundreds of scans a second per kiosk and race duplicate
# codes on purpose: real rate limits and the automatic block would refuse them. Tests of
# those defences turn them on explicitly. Fuzzing and fleet mixes send bad codes by the
# thousand, which would trip the circuit breaker and turn checkout off mid-test.
LIMITS_OFF: dict[str, Any] = {
    "rate_kiosk_per_min": 0,
    "rate_member_per_min": 0,
    "block_after_failures": 0,
    "breaker_min_scans": 10**9,
}
