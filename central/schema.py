"""``cs-central migrate``: show the schema version, or move it up or down (rollback)."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import sys

from central.backup import _lock_path
from central.errors import MigrationError
from central.settings import CentralSettings
from central.storage import migrations
from central.storage.postgres import PostgresStore
from central.storage.sqlite import SqliteStore


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``migrate`` to ``cs-central``."""
    p = commands.add_parser(
        "migrate",
        help="show the schema version, or migrate to --to N (down steps undo migrations)",
        description=command.__doc__,
    )
    p.add_argument("--to", dest="target", type=int, help="schema version (default: newest)")
    p.add_argument("--show", action="store_true", help="only print the current version")


def command(args: argparse.Namespace, settings: CentralSettings) -> int:
    """Migrate the configured database (every central stopped for a down step)."""
    newest = len(migrations.load(settings.database))
    try:
        if settings.database == "sqlite" and not args.show:
            # A running central holds a shared lock; a schema change under it is refused.
            with _lock_path(settings).open("ab") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    print("migrate refused: central is running; stop it first", file=sys.stderr)  # noqa: T201
                    return 1
                have, now = asyncio.run(_migrate(settings, args.target))
        else:
            have, now = asyncio.run(
                _migrate(settings, None if args.show else args.target, args.show)
            )
    except MigrationError as exc:
        print(f"migrate refused: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    if have == now:
        print(f"schema at version {now} of {newest}")  # noqa: T201 - a command's answer
    else:
        print(f"schema migrated from version {have} to {now} of {newest}")  # noqa: T201
    return 0


async def _migrate(
    settings: CentralSettings, target: int | None, show: bool = False
) -> tuple[int, int]:
    store: SqliteStore | PostgresStore
    if settings.database == "postgres":
        if settings.postgres_dsn is None:
            raise MigrationError("database=postgres needs CS_CENTRAL_POSTGRES_DSN")
        store = await PostgresStore(settings.postgres_dsn.get_secret_value(), max_size=1).open()
    else:
        store = await SqliteStore(settings.sqlite_file).open()
    try:
        have = await store.schema_version()
        if show:
            return have, have
        return have, await store.migrate(target)
    finally:
        await store.close()
