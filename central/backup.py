"""``cs-central backup`` and ``restore`` for the SQLite store: online copy, checked restore."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import shutil
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from central.audit import ChainReport, verify_chain
from central.errors import CentralError
from central.settings import CentralSettings
from central.storage.sqlite import SqliteStore

log = logging.getLogger(__name__)


class BackupError(CentralError):
    """A backup or restore that cannot go ahead; the message says why."""


def _lock_path(settings: CentralSettings) -> Path:
    return settings.sqlite_file.with_name(settings.sqlite_file.name + ".lock")


def hold_data(settings: CentralSettings) -> IO[bytes] | None:
    """A shared lock on the SQLite file for as long as central runs (restore checks it).

    Shared, because several instances may use one file; the file closes with the process,
    so a crashed central never leaves it held.
    """
    if settings.database != "sqlite":
        return None
    path = _lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("ab")
    fcntl.flock(handle, fcntl.LOCK_SH)
    return handle


def _integrity(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


async def _chain(path: Path) -> ChainReport:
    store = await SqliteStore(path).open()
    try:
        return await verify_chain(store)
    finally:
        await store.close()


def backup(settings: CentralSettings, target: Path) -> ChainReport:
    """Copy the live database to ``target`` while central keeps writing; check the copy."""
    if settings.database != "sqlite":
        raise BackupError("PostgreSQL is backed up with pg_dump -Fc (see docs/runbook.md)")
    if not settings.sqlite_file.exists():
        raise BackupError(f"no database at {settings.sqlite_file}")
    if target.exists():
        raise BackupError(f"{target} exists; choose a new file")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    SqliteStore(settings.sqlite_file).backup_to(partial)
    # A copy is only a backup once it has been read back whole.
    if (verdict := _integrity(partial)) != "ok":
        raise BackupError(f"the copy failed its integrity check: {verdict}")
    # One file, no WAL beside it: the copy is complete on its own.
    with contextlib.closing(sqlite3.connect(partial)) as db:
        db.execute("PRAGMA journal_mode = DELETE")
    report = asyncio.run(_chain(partial))
    partial.replace(target)
    return report


def restore(settings: CentralSettings, source: Path, *, force: bool) -> Path | None:
    """Put ``source`` in place of the live database; the old one is kept beside it.

    Refused while any central holds the data (its lock), when the backup fails its
    integrity check, or when a database is already there and ``force`` is not given.
    Returns where the replaced database was moved, if there was one.
    """
    if settings.database != "sqlite":
        raise BackupError("PostgreSQL is restored with pg_restore (see docs/runbook.md)")
    if not source.is_file():
        raise BackupError(f"no backup at {source}")
    if (verdict := _integrity(source)) != "ok":
        raise BackupError(f"{source} failed its integrity check: {verdict}")
    live = settings.sqlite_file
    if live.exists() and not force:
        raise BackupError(f"{live} exists; pass --force to replace it (it is kept aside)")
    live.parent.mkdir(parents=True, exist_ok=True)
    with _lock_path(settings).open("ab") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"central is running on {live}; stop it first") from None
        staged = live.with_name(live.name + ".restoring")
        shutil.copyfile(source, staged)
        aside = None
        if live.exists():
            aside = live.with_name(f"{live.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
            live.replace(aside)
        # A WAL left from the old database would be replayed onto the restored one.
        for suffix in ("-wal", "-shm"):
            old = live.with_name(live.name + suffix)
            if old.exists():
                if aside is not None:
                    old.replace(aside.with_name(aside.name + suffix))
                else:
                    old.unlink()
        staged.replace(live)
    return aside


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``backup`` and ``restore`` subcommands to ``cs-central``."""
    p = commands.add_parser(
        "backup", help="copy the SQLite database while central runs", description=backup.__doc__
    )
    p.add_argument("--to", dest="target", type=Path, required=True, help="new backup file")
    p = commands.add_parser(
        "restore", help="put a backup in place (central stopped)", description=restore.__doc__
    )
    p.add_argument("--from", dest="source", type=Path, required=True, help="backup file")
    p.add_argument("--force", action="store_true", help="replace an existing database")


def command(args: argparse.Namespace, settings: CentralSettings) -> int:
    """Run ``backup`` or ``restore``; 0 done, 1 refused (the message says why)."""
    try:
        if args.command == "backup":
            report = backup(settings, args.target)
            chain = "intact" if report.intact else f"BROKEN at seq {report.broken_seq}"
            print(  # noqa: T201 - a command's answer
                f"backed up {settings.sqlite_file} to {args.target}:"
                f" {report.head_pos} chained audit rows, chain {chain}"
            )
            return 0 if report.intact else 1
        aside = restore(settings, args.source, force=args.force)
        kept = f"; the old database is at {aside}" if aside else ""
        print(f"restored {args.source} to {settings.sqlite_file}{kept}")  # noqa: T201
    except (BackupError, sqlite3.Error, OSError) as exc:
        print(f"{args.command} refused: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0
