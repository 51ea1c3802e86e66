"""The console's charts and feed: p95 from histogram buckets, scans a minute, short member ids."""

from __future__ import annotations

from broker.messages import Reason
from central.console.pulse import Pulse, p95
from central.metrics import Metrics
from central.web.live import shorten


def test_p95_is_the_bucket_holding_the_95th_percent_of_what_was_seen_in_between() -> None:
    before = {0.01: 10.0, 0.05: 10.0, 0.1: 10.0, float("inf"): 10.0}
    after = {0.01: 100.0, 0.05: 105.0, 0.1: 110.0, float("inf"): 110.0}
    # 100 new observations: 90 under 10 ms, 5 more under 50 ms, 5 more under 100 ms.
    assert p95(before, after) == 0.05
    assert p95(after, after) is None  # nothing new, no percentile


def test_a_minute_counts_accepted_and_refused_scans_and_kiosks_online() -> None:
    metrics = Metrics()
    now = [1_000_020.0]
    pulse = Pulse(
        metrics.success, metrics.failed, metrics.validation_latency, lambda: 3, lambda: now[0]
    )
    for _ in range(4):
        metrics.verdict(Reason.CHECKED_OUT, replayed=False, seconds=0.02)
    metrics.verdict(Reason.EXPIRED, replayed=False, seconds=0.2)
    pulse.sample()
    minute = pulse.minutes[-1]
    assert (minute.accepted, minute.refused, minute.online) == (4, 1, 3)
    assert minute.p95_ms is not None
    assert minute.p95_ms >= 200
    now[0] += 60
    pulse.sample()
    assert len(pulse.minutes) == 2
    assert (pulse.minutes[-1].accepted, pulse.minutes[-1].refused) == (0, 0)
    charts = pulse.charts()
    assert set(charts) == {"scans", "latency", "online"}
    assert all(svg.startswith("<svg") for svg in charts.values())


def test_the_feed_shows_member_ids_shortened() -> None:
    assert shorten("M-1001") == "M-…01"
    assert shorten("ABCDEFGHIJ") == "AB…IJ"
    assert shorten(None) is None
