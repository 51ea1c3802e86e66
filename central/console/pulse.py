"""The live page's charts: scans a minute by outcome, validation latency p95, kiosks online.

Sampled from central's own metrics every few seconds (never on the scan path): counter
deltas give scans by outcome, histogram bucket deltas the minute's p95, presence the
kiosks online. An hour of minutes is kept; charts are drawn as inline SVG here.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

from prometheus_client import Counter, Histogram

MINUTES = 60
SAMPLE_S = 5.0


@dataclass(slots=True)
class Minute:
    """What one minute saw."""

    start: float
    accepted: int = 0
    refused: int = 0
    p95_ms: float | None = None
    online: int = 0
    buckets: dict[float, float] = field(default_factory=dict)


def _total(counter: Counter) -> float:
    return sum(
        s.value for metric in counter.collect() for s in metric.samples if s.name.endswith("_total")
    )


def _buckets(histogram: Histogram) -> dict[float, float]:
    out: dict[float, float] = {}
    for metric in histogram.collect():
        for s in metric.samples:
            if s.name.endswith("_bucket"):
                out[float(s.labels["le"])] = s.value
    return out


def p95(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The 95th percentile (bucket upper bound, seconds) of what was observed in between."""
    deltas = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    if not deltas or deltas[-1][1] <= 0:
        return None
    want = 0.95 * deltas[-1][1]  # the +Inf bucket holds every observation
    for le, count in deltas:
        if count >= want:
            return le
    return None


class Pulse:
    """An hour of per-minute samples of one central's scan stream and fleet."""

    def __init__(
        self,
        accepted: Counter,
        refused: Counter,
        latency: Histogram,
        online: Callable[[], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._accepted, self._refused, self._latency = accepted, refused, latency
        self._online = online
        self._clock = clock
        self.minutes: deque[Minute] = deque(maxlen=MINUTES)
        self._last = (_total(accepted), _total(refused))
        self._last_buckets = _buckets(latency)

    def sample(self) -> None:
        """Fold what happened since the last sample into the current minute."""
        now = self._clock()
        start = now - now % 60
        if not self.minutes or self.minutes[-1].start != start:
            self.minutes.append(Minute(start, buckets=dict(self._last_buckets)))
        minute = self.minutes[-1]
        accepted, refused = _total(self._accepted), _total(self._refused)
        minute.accepted += int(accepted - self._last[0])
        minute.refused += int(refused - self._last[1])
        self._last = (accepted, refused)
        self._last_buckets = _buckets(self._latency)
        seconds = p95(minute.buckets, self._last_buckets)
        minute.p95_ms = None if seconds is None else seconds * 1000
        minute.online = self._online()

    async def run(self, every_s: float = SAMPLE_S) -> None:
        """Sample for ever."""
        while True:
            self.sample()
            await asyncio.sleep(every_s)

    def charts(self) -> dict[str, str]:
        """The three charts as SVG markup."""
        minutes = list(self.minutes)
        return {
            "scans": _bars(minutes),
            "latency": _line(
                [m.p95_ms for m in minutes], "validation p95 (ms)", "#7c2d12", minimum=100
            ),
            "online": _line([float(m.online) for m in minutes], "kiosks online", "#14532d"),
        }


_W, _H, _PAD = 360, 120, 18


def _frame(title: str, body: str, top: float, total: float = 0) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" role="img"'
        f' aria-label="{escape(title)}" class="chart" data-total="{total:g}">'
        f'<text x="4" y="12" class="chart-title">{escape(title)} (max {top:g})</text>'
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W}" y2="{_H - _PAD}" class="axis"/>'
        f"{body}</svg>"
    )


def _bars(minutes: list[Minute]) -> str:
    top = max([m.accepted + m.refused for m in minutes] + [1])
    width = (_W - _PAD) / MINUTES
    scale = (_H - 2 * _PAD) / top
    parts = []
    offset = MINUTES - len(minutes)
    for n, m in enumerate(minutes):
        x = _PAD + (offset + n) * width
        ok_h, no_h = m.accepted * scale, m.refused * scale
        base = _H - _PAD
        parts.append(
            f'<rect x="{x:.1f}" y="{base - ok_h:.1f}" width="{width - 1:.1f}" height="{ok_h:.1f}"'
            f' class="ok"><title>{m.accepted} accepted</title></rect>'
            f'<rect x="{x:.1f}" y="{base - ok_h - no_h:.1f}" width="{width - 1:.1f}"'
            f' height="{no_h:.1f}" class="no"><title>{m.refused} refused</title></rect>'
        )
    total = sum(m.accepted + m.refused for m in minutes)
    return _frame("scans/min: accepted, refused", "".join(parts), top, total)


def _line(values: list[float | None], title: str, colour: str, minimum: float = 1) -> str:
    top = max([v for v in values if v is not None] + [minimum])
    width = (_W - _PAD) / MINUTES
    scale = (_H - 2 * _PAD) / top
    offset = MINUTES - len(values)
    xy = [
        (_PAD + (offset + n) * width, _H - _PAD - v * scale)
        for n, v in enumerate(values)
        if v is not None
    ]
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    # A dot per minute too: the first minute of an hour is a point, not yet a line.
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5"/>' for x, y in xy)
    body = (
        f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
        f'<g fill="{colour}">{dots}</g>'
    )
    return _frame(title, body, top)
