"""``cs-kiosk``: start the chosen release of the kiosk (or roll a failed trial back) and run it.

systemd starts this (``ExecStart``) and restarts it whenever it exits. It reads the
release state, applies the trial rules (kiosk/releases.py), and replaces itself
(``execve``: same PID, so systemd's notify and watchdog still see the kiosk) with
``python -m kiosk`` from the chosen release's directory, or from the base install.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from kiosk.releases import ReleaseDir, describe, on_start

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Choose the release, then become it."""
    args = list(sys.argv[1:] if argv is None else argv)
    state_dir = Path(os.environ.get("CS_KIOSK_STATE_DIR", "var/kiosk"))
    releases = ReleaseDir(state_dir)
    env = dict(os.environ)
    if "--validate-config" not in args:
        state = releases.load()
        chosen = on_start(state, datetime.now(UTC))
        if chosen != state:
            releases.save(chosen)
            print(f"cs-kiosk: release state {describe(chosen)}", file=sys.stderr)  # noqa: T201
        if chosen.current is not None:
            # First on the path, so its kiosk, hardware and broker packages (and its
            # dist-info, hence its version) shadow the base install's.
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(releases.path(chosen.current)), env.get("PYTHONPATH")) if p
            )
    # -P: no working directory on the path, which would shadow the release with whatever
    # kiosk package happens to sit there.
    os.execve(sys.executable, [sys.executable, "-P", "-m", "kiosk", *args], env)  # noqa: S606
    return 1  # pragma: no cover - execve does not return


if __name__ == "__main__":
    sys.exit(main())
