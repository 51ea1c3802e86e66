"""What a load run cost: CPU seconds of central and of PostgreSQL's backends, round trips."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
import httpx
import psutil

from testkit.processes import CentralProcess, admin_client


@dataclass(frozen=True, slots=True)
class Reading:
    """Cumulative CPU seconds and the centrals' batch counters at one moment."""

    central_s: float
    postgres_s: float
    counts: dict[str, int]


def _cpu(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:  # a backend that has just exited
        return 0.0
    return float(times.user + times.system)


async def _backends(dsn: str) -> list[int]:
    """The PostgreSQL server processes serving ``dsn``'s database (other than this one)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [int(row["pid"]) for row in rows]


def _counts(process: CentralProcess) -> dict[str, int]:
    try:
        with admin_client(process) as client:
            data = client.get("/stats", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return {k: int(v) for k, v in data.get("batches", {}).items() if isinstance(v, int)}


def read(processes: list[CentralProcess], dsn: str | None) -> Reading:
    """CPU so far of the central processes and of the database's backends (0 on SQLite)."""
    central = sum(_cpu(p.process.pid) for p in processes if p.process is not None)
    postgres = 0.0
    if dsn is not None:
        postgres = sum(_cpu(pid) for pid in asyncio.run(_backends(dsn)))
    counts: dict[str, int] = {}
    for process in processes:
        for key, value in _counts(process).items():
            counts[key] = counts.get(key, 0) + value
    return Reading(central, postgres, counts)


@dataclass(frozen=True, slots=True)
class Cost:
    """Per decided scan, between two readings."""

    central_ms: float  # CPU of the central processes
    postgres_ms: float  # CPU of the PostgreSQL backends
    round_trips: float | None  # statements per batched scan (None: no batches)
    batch: float | None  # scans per batch

    @property
    def total_ms(self) -> float:
        return self.central_ms + self.postgres_ms


def between(start: Reading, end: Reading, verdicts: int) -> Cost:
    """The cost per verdict of what happened between ``start`` and ``end``."""
    n = max(verdicts, 1)

    def delta(key: str) -> int:
        return end.counts.get(key, 0) - start.counts.get(key, 0)

    events, batches = delta("events"), delta("batches")
    return Cost(
        central_ms=(end.central_s - start.central_s) * 1e3 / n,
        postgres_ms=(end.postgres_s - start.postgres_s) * 1e3 / n,
        round_trips=delta("statements") / events if events else None,
        batch=events / batches if batches else None,
    )
