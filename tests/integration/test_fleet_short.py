"""Short runs of the fleet benches: a few hundred kiosks through a broker restart, a fan-out."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.fanout_probe import _play, _play_lean
from bench.fleet import parse_args, play
from bench.fleet_run import Run

KIOSKS = 300


@pytest.mark.slow
async def test_fleet_rides_out_a_broker_restart() -> None:
    # Real Mosquitto (with its persistence), a real central process on SQLite, 300 kiosks
    # each with its own MQTT session walking up with real signed codes; the broker is
    # restarted 20 s in, with every kiosk connected and scans in flight.
    run = Run(
        parse_args(
            [
                f"--kiosks={KIOSKS}",
                "--procs=1",
                "--kiosks-per-shelf=30",
                "--items-per-shelf=6",
                "--minutes=0.75",
                "--walkups=4",
                "--faults=20:broker-restart",
            ]
        )
    )
    await play(run)
    s = run.summary
    restart = run.faults[0]
    assert restart["action"] == "broker-restart"
    # Every kiosk back, with its shelf's current availability and an empty outbox, in 15 s.
    assert restart["all_back_after_stop_s"] is not None
    assert restart["all_back_after_stop_s"] <= 15, restart
    assert s["totals"]["connected"] == KIOSKS
    assert s["stale_kiosks"] == 0
    # Every scan answered and decided exactly once; no checkout, return or session doubled.
    assert s["final"]["unanswered"] == []
    assert s["events_sent"] == s["events_decided"] > 50
    assert s["lost"] == 0
    assert s["violations"] == 0, s["checks"]
    # The walk-up mix really ran: checkouts, returns, bad codes and reused passes.
    reasons = s["final"]["reasons"]
    for reason in ("SESSION_OPENED", "CHECKED_OUT", "RETURNED", "BAD_SIGNATURE", "ALREADY_USED"):
        assert reasons.get(reason, 0) > 0, reasons
    # Availability changes reached every kiosk of their shelf while nothing failed.
    assert s["fanout_changes"] > 0
    assert s["fanout_changes_short"] == 0


def test_fanout_probe_reaches_every_receiver(tmp_path: Path) -> None:
    # The broker-only fan-out bench (bench/fanout_probe.py), short: 300 bare receivers,
    # 3 availability changes; each change reaches all of them and is timed and costed.
    out = _play(tmp_path, 300, 3, 0.5)
    assert len(out.to_all) == len(out.first) == 3
    assert all(0 < a <= b for a, b in zip(out.first, out.to_all, strict=True))
    # Costed: a number, not the NaN of a run that never measured (a few hundred copies
    # less the idle rate can come out near zero, or below it, on a busy machine).
    assert math.isfinite(out.broker_us)


async def test_fanout_to_lean_kiosks_reaches_every_kiosk_once(tmp_path: Path) -> None:
    # The same with the fleet simulator's kiosks on the far end (--far-end lean): every
    # change reaches each of the 300 kiosks exactly once, timed from the decision stamp.
    out = await _play_lean(tmp_path, 300, 3, 0.5, 1)
    assert len(out.to_all) == len(out.first) == 3
    assert sum(out.deliveries.values()) == 3 * 300
    assert all(0 <= a <= b for a, b in zip(out.first, out.to_all, strict=True))
    assert math.isfinite(out.far_end_us)
