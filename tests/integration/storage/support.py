"""Stores on either backend for the storage tests, and what they check the schema with."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from central.errors import StorageError
from central.storage import migrations
from central.storage.base import Tx
from central.storage.postgres import PostgresStore
from central.storage.sqlite import SqliteStore
from testkit.postgres import fresh_database
from tests.unit.central.support import AnyStore, query

BACKENDS = ("sqlite", "postgres")
NEWEST = len(migrations.load("sqlite"))
V1_TABLES = (
    "shelves",
    "kiosks",
    "members",
    "items",
    "qr_codes",
    "sessions",
    "checkouts",
    "scan_events",
    "qr_audit_log",
)
# Every table at the newest schema version, by the migration that added it.
TABLES = (
    *V1_TABLES,
    "broker_accounts",  # 0002_fleet
    "enrolments",  # 0002_fleet
    "rate_buckets",  # 0004_security
    # 0009_members_app
    "member_emails",
    "web_tickets",
    "passkeys",
    "web_sessions",
    "member_devices",
    # 0010_circulation
    "categories",
    "member_training",
    "agreements",
    "member_agreements",
    "holds",
    "reservations",
    "repair_tickets",
    # 0011_reminders
    "reminder_deliveries",
    "reminder_claims",
    "reminder_subscriptions",
    # 0012_staff
    "staff",
    "staff_tickets",
    "staff_passkeys",
    "staff_sessions",
)
# Tables later migrations add (not emptied between tests: they hold settings, not data).
NEWEST_TABLES = (
    *TABLES,
    "rollout_flags",
    "audit_chain_head",
    "releases",
    "release_rollouts",
    "kiosk_updates",
    "circulation_settings",  # 0010_circulation: one row of library settings
    "reminder_settings",
)
# Whatever a database says when it refuses a statement, on either backend.
DB_ERRORS = (sqlite3.Error, asyncpg.PostgresError)
# What a broken constraint raises from a Tx method (the stores pass these through).
INTEGRITY_ERRORS = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


@contextlib.asynccontextmanager
async def open_backend(
    backend: str, tmp_path: Path, *, migrate: bool = True
) -> AsyncIterator[AnyStore]:
    """An open store: a file under ``tmp_path``, or a fresh PostgreSQL database (dropped after)."""
    async with contextlib.AsyncExitStack() as stack:
        store: AnyStore
        if backend == "sqlite":
            store = await SqliteStore(tmp_path / "central.db").open()
        elif backend == "postgres":
            store = await PostgresStore(await stack.enter_async_context(fresh_database())).open()
        else:
            raise ValueError(f"no backend {backend!r}")
        stack.push_async_callback(store.close)  # before the database is dropped
        if migrate:
            await store.migrate()
        yield store


async def empty_postgres(store: PostgresStore) -> None:
    """Delete every row and restart every id, as if just migrated (a test-only reset).

    The audit log refuses TRUNCATE by trigger; the reset lifts that trigger for its own
    transaction only, so the guard is back on (and tested) afterwards.
    """
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE qr_audit_log DISABLE TRIGGER qr_audit_log_no_truncate")
        await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        # The chain starts afresh with the emptied log.
        await conn.execute(
            "UPDATE audit_chain_head SET genesis_seq = 0, pos = 0, row_hash = repeat('0', 64)"
        )
        await conn.execute("ALTER TABLE qr_audit_log ENABLE TRIGGER qr_audit_log_no_truncate")


async def tables(store: AnyStore) -> set[str]:
    """The library's tables present now (not the migration bookkeeping)."""
    if isinstance(store, SqliteStore):
        rows = await query(store, "SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = await query(
            store, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
    return {row[0] for row in rows} - {"sqlite_sequence", "schema_migrations"}


async def schema_objects(store: AnyStore) -> set[tuple[str, str]]:
    """Every table, index, trigger, sequence and function the migrations own, by kind."""
    if isinstance(store, SqliteStore):
        rows = await query(
            store,
            "SELECT type, name FROM sqlite_master"
            " WHERE name NOT IN ('sqlite_sequence', 'schema_migrations')"
            " AND name NOT LIKE 'sqlite_autoindex_schema_migrations%'"
            # Columns too: a migration may only add one to an existing table.
            " UNION ALL SELECT 'column', m.name || '.' || c.name"
            " FROM sqlite_master m JOIN pragma_table_info(m.name) c"
            " WHERE m.type = 'table' AND m.name NOT IN ('sqlite_sequence', 'schema_migrations')",
        )
    else:
        rows = await query(
            store,
            "SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'i' THEN 'index'"
            " WHEN 'S' THEN 'sequence' ELSE c.relkind::text END, c.relname"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relname NOT LIKE 'schema_migrations%'"
            " UNION ALL SELECT 'trigger', t.tgname FROM pg_trigger t"
            " JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND NOT t.tgisinternal"
            " UNION ALL SELECT 'function', p.proname FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = current_schema()"
            " UNION ALL SELECT 'column', table_name || '.' || column_name"
            " FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name NOT LIKE 'schema_migrations%'",
        )
    return {(str(kind), str(name)) for kind, name in rows}


@contextlib.asynccontextmanager
async def conflict(store: AnyStore, tx: Tx) -> AsyncIterator[None]:
    """The block must be refused by the database, as a conflict the consumer would retry.

    It runs in a savepoint, as the consumer runs each event, so the refusal undoes only the
    block and the transaction stays usable (PostgreSQL aborts a whole transaction otherwise).
    """
    with pytest.raises((*DB_ERRORS, StorageError)) as caught:
        async with store.savepoint(tx):
            yield
    assert store.is_conflict(caught.value), repr(caught.value)
