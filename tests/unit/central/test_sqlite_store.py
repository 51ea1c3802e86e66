"""What only the SQLite store has: a file of its own and text timestamps.

Everything both stores do (migrations, constraints, the audit log, the rules) is tested on
both backends in tests/integration/storage.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from central.storage import migrations
from central.storage.dialect import from_db, to_db
from central.storage.sqlite import SqliteStore
from tests.unit.central.support import ADMIN, open_store, sql

NEWEST = len(migrations.load("sqlite"))
TABLES = {
    "shelves",
    "kiosks",
    "members",
    "items",
    "qr_codes",
    "sessions",
    "checkouts",
    "scan_events",
    "qr_audit_log",
    "broker_accounts",
    "enrolments",
    "rollout_flags",
    "rate_buckets",
    "audit_chain_head",
    "releases",
    "release_rollouts",
    "kiosk_updates",
    # 0009_members_app
    "member_emails",
    "web_tickets",
    "passkeys",
    "web_sessions",
    "member_devices",
    # 0010_circulation
    "circulation_settings",
    "categories",
    "member_training",
    "agreements",
    "member_agreements",
    "holds",
    "reservations",
    "repair_tickets",
    # 0011_reminders
    "reminder_settings",
    "reminder_deliveries",
    "reminder_claims",
    "reminder_subscriptions",
    # 0012_staff
    "staff",
    "staff_tickets",
    "staff_passkeys",
    "staff_sessions",
}


def test_timestamps_keep_microseconds_and_sort_as_text() -> None:
    # SQLite-only: it keeps times as text, PostgreSQL as timestamptz.
    early = datetime(2026, 1, 5, 9, 0, 0, 5, tzinfo=UTC)
    late = early + timedelta(microseconds=1)
    assert from_db(to_db(early)) == early
    assert to_db(early) < to_db(late)
    assert to_db(datetime(2026, 1, 5, 10, 0, tzinfo=UTC)) > to_db(
        datetime(2026, 1, 5, 9, 59, 59, tzinfo=UTC)
    )
    # Any zone in, UTC text out: the same instant is the same text.
    plus_two = datetime(2026, 1, 5, 13, 0, tzinfo=timezone(timedelta(hours=2)))
    assert to_db(plus_two) == "2026-01-05T11:00:00.000000Z"


async def test_open_creates_the_folder_and_a_wal_file_that_keeps_the_schema(
    tmp_path: Path,
) -> None:
    # SQLite-only: the database is a file central creates, in WAL mode.
    path = tmp_path / "not" / "yet" / "central.db"
    store = await open_store(path)
    try:
        await store.add_shelf("SHELF-A", "Power tools", datetime(2026, 1, 5, tzinfo=UTC), ADMIN)
    finally:
        await store.close()

    assert sql(path, "PRAGMA journal_mode") == [("wal",)]
    tables = {row[0] for row in sql(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables - {"sqlite_sequence", "schema_migrations"} == TABLES
    assert sql(path, "SELECT version FROM schema_migrations ORDER BY version") == [
        (v,) for v in range(1, NEWEST + 1)
    ]

    # Reopened, the file is already at the newest version and keeps its rows.
    again = await SqliteStore(path).open()
    try:
        assert await again.schema_version() == NEWEST
        assert await again.migrate() == NEWEST
        assert [entry.action for entry in await again.audit_tail(10)] == ["shelf.add"]
    finally:
        await again.close()
