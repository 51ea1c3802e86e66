"""Finds the versioned migration scripts shipped with central, per backend."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

from central.errors import MigrationError

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: the script that applies it and the one that undoes it."""

    version: int
    name: str
    up: str
    down: str


def load(backend: str) -> list[Migration]:
    """Every migration for ``backend`` (``sqlite`` or ``postgres``), oldest first."""
    folder = resources.files("central.migrations").joinpath(backend)
    scripts: dict[tuple[int, str], dict[str, str]] = {}
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        version, name, direction = int(match[1]), match[2], match[3]
        scripts.setdefault((version, name), {})[direction] = entry.read_text()
    migrations = []
    for (version, name), pair in sorted(scripts.items()):
        if set(pair) != {"up", "down"}:
            raise MigrationError(f"migration {version:04d}_{name} lacks an up or a down script")
        migrations.append(Migration(version, name, pair["up"], pair["down"]))
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise MigrationError(f"{backend} migrations are not numbered 1..n without gaps")
    return migrations


def statements(script: str) -> list[str]:
    """A SQLite script cut into whole statements (trigger bodies kept whole)."""
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    leftover = "".join(
        line for line in current.splitlines() if line.strip() and not line.strip().startswith("--")
    )
    if leftover:
        raise MigrationError(f"migration script ends mid-statement: {leftover[:60]!r}")
    return out
