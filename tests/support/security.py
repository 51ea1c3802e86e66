"""Settings that turn central's abuse defences off, for harnesses that play kiosks by machine."""

from typing import Any

# Load tests and benchmarks send hundreds of scans a second per kiosk and race duplicate
# codes on purpose: real rate limits and the automatic block would refuse them. Tests of
# those defences turn them on explicitly.
LIMITS_OFF: dict[str, Any] = {
    "rate_kiosk_per_min": 0,
    "rate_member_per_min": 0,
    "block_after_failures": 0,
}
