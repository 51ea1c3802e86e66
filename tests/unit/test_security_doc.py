"""docs/security.md's threat table names real tests, so it cannot rot into claims."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "security.md"
THREATS = (
    "spoofed kiosk",
    "kiosk publishing as another kiosk",
    "forged label",
    "replayed pass",
    "pass screenshot shared",
    "brute force of tokens",
    "flooding",
    "tampered audit log",
    "stolen kiosk SD card",
    "leaked signing key",
    "leaked admin token",
    "decoder-breaking frame",
    "topic outside the contract",
    "share-group theft",
    "oversized input",
    "dead central",
    "lockout abuse",
    "breaker abuse",
    "terminal injection",
    "code-like clutter in view",
    "malicious update",
    "stolen release key",
    "poison message",
    "flood",
    "event-id collision",
    "backdated return",
    "phone pass screenshot or photo",
    "lost or stolen phone",
    "members' app sign-in abuse",
    "cross-site request forgery on the members' app",
    "one member reading another's loans",
    "members' app input abuse",
    "unrecorded admin attempt",
    "queue jumping",
    "false problem report",
    "reminder mail flood or duplicates",
    "unsubscribe link abuse",
)
NODE = re.compile(r"`(tests/[\w/]+\.py::\w+)`")


def table() -> dict[str, str]:
    """Threat → its row's test cell, from the first table in the document."""
    rows: dict[str, str] = {}
    for line in DOC.read_text().splitlines():
        if not line.startswith("| ") or line.startswith(("| threat", "|---")):
            if rows:
                break  # the threat table ended
            continue
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        assert len(cells) == 3, line
        rows[cells[0]] = cells[2]
    return rows


def collected(files: set[str]) -> set[str]:
    """Node ids pytest collects from ``files``, parameters stripped."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *sorted(files),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return {line.split("[", 1)[0] for line in result.stdout.splitlines() if "::" in line}


def test_every_threat_has_a_row_with_a_test_or_a_todo() -> None:
    rows = table()
    for threat in THREATS:
        # The name, alone or followed by its description ("flood" is not "flooding").
        matches = [cell for name, cell in rows.items() if name.split(" (")[0] == threat]
        assert len(matches) == 1, f"no single row for {threat!r}"
        assert NODE.search(matches[0]) or "TODO(lead)" in matches[0], threat


def test_every_test_the_table_names_exists() -> None:
    named = {node for cell in table().values() for node in NODE.findall(cell)}
    assert len(named) >= 20
    files = {node.split("::", 1)[0] for node in named}
    missing = named - collected(files)
    assert not missing, f"docs/security.md names tests that do not exist: {sorted(missing)}"
