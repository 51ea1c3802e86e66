"""The README's run command as a user runs it: real processes, real output, clean stops."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _demo(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "demo", "--data-dir", str(tmp_path / "demo"), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def _no_processes_under(path: Path) -> bool:
    """Whether no process has ``path`` on its command line (mosquitto, central)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(path) in cmdline.read_bytes().decode(errors="replace"):
                return False
        except OSError:
            continue
    return True


@pytest.mark.slow
def test_demo_walks_through_checkout_reuse_and_return(tmp_path: Path) -> None:
    demo = _demo(tmp_path, "--once")
    out, _ = demo.communicate(timeout=120)
    assert demo.returncode == 0, out
    verdicts = [
        line.split("verdict", 1)[1].strip() for line in out.splitlines() if " verdict " in line
    ]
    assert verdicts == [
        "SESSION_OPENED for Ada",
        "CHECKED_OUT Cordless drill for Ada",
        "CHECKED_OUT Jigsaw for Ada",
        "SESSION_CLOSED",
        "ALREADY_USED",
        "RETURNED Cordless drill",
        "SESSION_OPENED for Grace",
        "HOLD_PLACED Jigsaw for Grace",
        "SESSION_CLOSED",
        "RETURNED_TO_HOLD Jigsaw",
    ]
    # Each verdict is shown with its pattern, and availability flips out and back.
    for pattern in (
        "session-opened",
        "checked-out",
        "session-closed",
        "refused-pass-used",
        "returned",
        "hold-placed",
        "hold-shelf",
    ):
        assert f"pattern      {pattern}:" in out
    assert "Cordless drill (DRILL-01) is checked out" in out
    assert out.index("Cordless drill (DRILL-01) is checked out") < out.rindex(
        "Cordless drill (DRILL-01) is available"
    )
    assert "everything stopped" in out
    # A person can open the members' app and sign in as Ada with the printed link.
    assert re.search(r"members' app on http://localhost:\d+", out)
    assert re.search(
        r"Ada's sign-in link \(once, 20 min\): http://localhost:\d+/signin/link/\S+", out
    )
    # The QR images the kiosks were fed are on disk for a person to look at.
    assert sorted(p.name for p in (tmp_path / "demo" / "codes").iterdir()) == [
        "label-DRILL-01.png",
        "label-SAW-01.png",
        "pass-M-1001.png",
        "pass-M-1002.png",
    ]
    # The jigsaw waits on the hold shelf for Grace.
    assert "Jigsaw (SAW-01) is held" in out
    assert _no_processes_under(tmp_path / "demo")


@pytest.mark.slow
def test_ctrl_c_stops_everything_cleanly(tmp_path: Path) -> None:
    demo = _demo(tmp_path)
    assert demo.stdout is not None
    deadline = time.monotonic() + 90
    seen = []
    for line in demo.stdout:
        seen.append(line)
        if "Ctrl-C stops" in line or time.monotonic() > deadline:
            break
    assert any("Ctrl-C stops" in line for line in seen), "".join(seen)
    demo.send_signal(signal.SIGINT)
    rest, _ = demo.communicate(timeout=30)
    assert demo.returncode == 0, rest
    assert "everything stopped" in rest
    assert _no_processes_under(tmp_path / "demo")
