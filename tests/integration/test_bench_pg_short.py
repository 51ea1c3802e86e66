"""A short run of the load bench on PostgreSQL: batched scans, one round trip or fewer each."""

from __future__ import annotations

import pytest

from bench.load import run
from testkit.consistency import violations


@pytest.mark.slow
def test_postgres_decides_batches_in_less_than_a_round_trip_per_scan() -> None:
    # A real central process on PostgreSQL, real Mosquitto, 64 kiosks scanning signed codes
    # for a few seconds, then the consistency checks straight over the database.
    result = run("postgres", 1, "throughput", seconds=4, window=128)
    assert result.verdicts == result.scans > 0
    assert violations(result.checks) == 0, result.checks
    spent = result.cost
    assert spent is not None
    assert spent.round_trips is not None
    assert spent.batch is not None
    # Scans were decided in batches of several, each costing at most one statement.
    assert spent.batch >= 4, spent
    assert spent.round_trips <= 1.0, spent
