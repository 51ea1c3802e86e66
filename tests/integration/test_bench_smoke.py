"""Each benchmark without a short version elsewhere, run small: none of them rots unseen.

These check that a bench still runs against today's code and still measures what it says
(every scan answered, nothing mailed twice, the table it prints complete); the figures
themselves are measured in ``bench/`` on a quiet machine, never asserted here. The load
bench runs in CI as ``bench/gate.py``, the fleet and fan-out in ``test_fleet_short.py``,
the hostile load in ``test_hostile_short.py``, the decoders in
``tests/unit/hardware/test_decoder_bench.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench(module: str, *args: str, timeout: float = 240) -> str:
    """Run ``python -m bench.<module> args`` from the project root; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in:\n{text}"
    return float(found.group(1).replace(",", ""))


def test_ledger_cpu_decides_every_checkout_and_return() -> None:
    out = bench("ledger_cpu", "--rounds", "2")
    assert number(r"([\d.]+) us CPU per event", out) > 0
    checked_out = number(r"'CHECKED_OUT': (\d+)", out)
    assert checked_out > 0
    assert number(r"'RETURNED': (\d+)", out) == checked_out  # each loan came back


def test_the_audit_chain_bench_compares_plain_and_chained_writes() -> None:
    out = bench("audit_chain", "--transactions", "100", "--writers", "4", "--rounds", "1")
    assert number(r"plain\s+median ([\d,]+) tx/s", out) > 0
    assert number(r"chained\s+median ([\d,]+) tx/s", out) > 0
    assert "chain cost:" in out


def test_a_reminder_round_mails_each_member_once() -> None:
    out = bench("reminders_round", "--members", "20", "--loans", "100", "--rounds", "2")
    assert re.search(r"first claimed\s+20 sent\s+20:", out), out
    assert re.search(r"then\s+claimed\s+0 sent\s+0:", out), out  # nothing twice


@pytest.mark.slow
def test_the_console_pages_bench_times_every_page() -> None:
    out = bench(
        "console_pages",
        *("--items", "200", "--members", "200", "--kiosks", "20", "--loans", "40"),
        *("--repeat", "2"),
    )
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \|$", out, re.MULTILINE)
    names = [name for name, _, _ in rows]
    assert "fleet (20 kiosks, page 1)" in names
    assert "circulation (40 loans)" in names
    assert "label sheet (PDF, 50 labels)" in names
    assert len(rows) == 11


@pytest.mark.slow
def test_the_kiosk_latency_bench_answers_every_scan() -> None:
    out = bench("kiosk_latency", "--scans", "10")
    row = re.search(r"^\| zxing-cpp \| near \| (\d+) \| ([\d.]+) \|", out, re.MULTILINE)
    assert row, out
    assert int(row.group(1)) == 10


@pytest.mark.slow
def test_the_live_catalogue_bench_answers_every_scan_and_updates_pages() -> None:
    out = bench("members_live", "--clients", "10", "--rate", "30", "--seconds", "2")
    assert "clients connected: 10 of 10" in out
    offered = number(r"scans offered: (\d+)", out)
    assert offered > 0
    assert number(r"verdicts: (\d+)", out) == offered
    assert number(r"page deliveries: (\d+)", out) > 0


def test_the_pass_bench_reads_the_pass_at_full_brightness() -> None:
    # Reads the members' app's own screenshot of My pass (taken by the browser tests).
    out = bench("members_pass")
    full = re.findall(r"^\| \d+ \| 1\.00 \| (\w+) \| [\w-]+ \| (\w+) \|$", out, re.MULTILINE)
    assert full, out
    assert all(row == ("read", "read") for row in full)
