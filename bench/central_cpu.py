"""Central's CPU per verdict under ``bench.load``, by turns with another tree (Linux).

    python -m bench.central_cpu --rounds 3 --other ../base -- --mode throughput --seconds 20

On a machine shared with other work, verdicts/s moves with whatever else runs (the
scheduler gives central a third of a core one minute and two thirds the next); the CPU
central spends per verdict moves far less, and it is what a change to central's hot path
changes. Each run starts ``python -m bench.load`` (SQLite, one central) in a tree, finds
its central process, reads that process's CPU time from ``/proc`` over the middle of the
run, and divides by the run's verdicts/s. With ``--other`` the other tree runs first in
each round, with this interpreter, as ``bench/gate.py`` does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    """One run: verdicts/s, central's share of a core and CPU microseconds per verdict."""

    tree: str
    rate: float
    p50_ms: float
    p99_ms: float
    violations: int
    core: float

    @property
    def us_per_verdict(self) -> float:
        return self.core / self.rate * 1e6 if self.rate else float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _central_of(bench: subprocess.Popen[str], within: float) -> int:
    """The pid of the central process ``bench`` started."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{bench.pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                if argv[1:3] == [b"-m", b"central"]:
                    return int(child)
        time.sleep(0.1)
    raise RuntimeError("bench.load started no central process")


def one_run(tree: Path, load_args: list[str], seconds: float) -> Sample:
    """One ``bench.load`` run in ``tree``, central's CPU read over its middle."""
    command = [sys.executable, "-m", "bench.load", "--backend", "sqlite", "--centrals", "1"]
    command += ["--seconds", str(seconds), *load_args]
    with subprocess.Popen(  # noqa: S603 - this interpreter, the caller's arguments
        command, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as bench:
        pid = _central_of(bench, 60)
        time.sleep(4)  # central up, the sessions opened, the load under way
        window = max(2.0, seconds - 6)
        before, started = _cpu_seconds(pid), time.monotonic()
        time.sleep(window)
        core = (_cpu_seconds(pid) - before) / (time.monotonic() - started)
        out, _ = bench.communicate(timeout=seconds + 180)
    for line in out.splitlines():
        if line.startswith("| sqlite, 1 central,"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rate, p50, p99 = float(cells[3].replace(",", "")), float(cells[4]), float(cells[6])
            return Sample(tree.name, rate, p50, p99, int(cells[8]), core)
    raise RuntimeError(f"no result from {tree}:\n{out[-2000:]}")


def main() -> int:
    """Rounds by turns; each run's line, then the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--other", type=Path, help="a tree to run first in each round")
    parser.add_argument("load_args", nargs="*", help="bench.load's arguments, after --")
    args = parser.parse_args()
    trees = ([args.other.resolve()] if args.other else []) + [HERE]
    samples: dict[Path, list[Sample]] = {tree: [] for tree in trees}
    for _ in range(args.rounds):
        for tree in trees:
            s = one_run(tree, args.load_args, args.seconds)
            samples[tree].append(s)
            load = os.getloadavg()[0]
            print(
                f"{s.tree}: {s.rate:,.0f} verdicts/s, p50 {s.p50_ms:.1f} ms, p99 {s.p99_ms:.1f}"
                f" ms, central {s.core:.0%} of a core, {s.us_per_verdict:.0f} us CPU per"
                f" verdict, violations {s.violations}, load average {load:.1f}",
                flush=True,
            )
    for tree, runs in samples.items():
        print(
            f"median {tree.name}: {statistics.median(r.rate for r in runs):,.0f} verdicts/s,"
            f" {statistics.median(r.us_per_verdict for r in runs):.0f} us CPU per verdict"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
