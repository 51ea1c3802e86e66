"""The invariants, counted straight from central's database (SQLite or PostgreSQL)."""

from __future__ import annotations

import sqlite3

import asyncpg

from central.audit import verify_chain
from central.settings import CentralSettings
from central.storage.postgres import PostgresStore
from central.storage.sqlite import SqliteStore

CHECKS = {
    "events decided": "SELECT count(*) FROM scan_events",
    "items with two open checkouts": (
        "SELECT count(*) FROM (SELECT item_id FROM checkouts WHERE returned_at IS NULL"
        " GROUP BY item_id HAVING count(*) > 1) t"
    ),
    "CHECKED_OUT verdicts": "SELECT count(*) FROM scan_events WHERE reason = 'CHECKED_OUT'",
    "checkouts": "SELECT count(*) FROM checkouts",
    "RETURNED verdicts": "SELECT count(*) FROM scan_events WHERE reason = 'RETURNED'",
    "returns": "SELECT count(*) FROM checkouts WHERE returned_at IS NOT NULL",
    "checkouts without their verdict": (
        "SELECT count(*) FROM checkouts c LEFT JOIN scan_events e ON e.event_id = c.event_id"
        " AND e.reason = 'CHECKED_OUT' WHERE e.event_id IS NULL"
    ),
    "SESSION_OPENED verdicts": "SELECT count(*) FROM scan_events WHERE reason = 'SESSION_OPENED'",
    "sessions": "SELECT count(*) FROM sessions",
    "passes opening two sessions": (
        "SELECT count(*) FROM (SELECT pass_id FROM sessions GROUP BY pass_id HAVING count(*) > 1) t"
    ),
    "verdicts without their audit row": (
        "SELECT count(*) FROM scan_events e LEFT JOIN qr_audit_log a ON a.event_id = e.event_id"
        " AND a.action LIKE 'scan.%' WHERE a.seq IS NULL"
    ),
    # Circulation (docs/circulation.md).
    "RETURNED_TO_HOLD verdicts": (
        "SELECT count(*) FROM scan_events WHERE reason = 'RETURNED_TO_HOLD'"
    ),
    "returns to the hold shelf": (
        "SELECT count(*) FROM checkouts c JOIN scan_events e ON e.event_id = c.return_event_id"
        " AND e.kiosk_id = c.return_kiosk_id WHERE e.reason = 'RETURNED_TO_HOLD'"
    ),
    "items with two ready holds": (
        "SELECT count(*) FROM (SELECT item_id FROM holds WHERE state = 'ready'"
        " GROUP BY item_id HAVING count(*) > 1) t"
    ),
    "held items out on loan": (
        "SELECT count(*) FROM holds h JOIN checkouts c ON c.item_id = h.item_id"
        " AND c.returned_at IS NULL WHERE h.state = 'ready'"
    ),
    "loans taken while held for another": (
        "SELECT count(*) FROM checkouts c JOIN holds h ON h.item_id = c.item_id"
        " AND h.member_id <> c.member_id AND h.ready_at IS NOT NULL"
        " WHERE c.checked_out_at >= h.ready_at"
        " AND (h.closed_at IS NULL OR c.checked_out_at < h.closed_at)"
    ),
    "holds allocated": "SELECT count(*) FROM holds WHERE ready_at IS NOT NULL",
    "holds fulfilled by another member's loan": (
        "SELECT count(*) FROM holds h WHERE h.state = 'fulfilled' AND NOT EXISTS"
        " (SELECT 1 FROM checkouts c WHERE c.item_id = h.item_id"
        " AND c.member_id = h.member_id AND c.checked_out_at = h.closed_at)"
    ),
    "loans overlapping a reservation": (
        "SELECT count(*) FROM checkouts c JOIN reservations r ON r.item_id = c.item_id"
        " AND r.state = 'booked' AND r.member_id <> c.member_id"
        " WHERE c.checked_out_at < r.ends_at AND COALESCE(c.returned_at, c.due_at) > r.starts_at"
    ),
}


async def consistency(settings: CentralSettings) -> dict[str, int]:
    """Every number in :data:`CHECKS`, read from the database ``settings`` names, and
    whether its audit chain is broken (1) or intact (0)."""
    numbers = await _counts(settings)
    numbers["audit chain broken"] = await _chain_broken(settings)
    return numbers


async def _counts(settings: CentralSettings) -> dict[str, int]:
    if settings.database == "sqlite":
        with sqlite3.connect(settings.sqlite_file) as db:
            return {name: int(db.execute(sql).fetchone()[0]) for name, sql in CHECKS.items()}
    assert settings.postgres_dsn is not None
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        return {name: int(await conn.fetchval(sql)) for name, sql in CHECKS.items()}
    finally:
        await conn.close()


async def _chain_broken(settings: CentralSettings) -> int:
    store: SqliteStore | PostgresStore
    if settings.database == "sqlite":
        store = await SqliteStore(settings.sqlite_file).open()
    else:
        assert settings.postgres_dsn is not None
        dsn = settings.postgres_dsn.get_secret_value()
        store = await PostgresStore(dsn, min_size=1, max_size=2).open()
    try:
        return 0 if (await verify_chain(store)).intact else 1
    finally:
        await store.close()


def violations(numbers: dict[str, int]) -> int:
    """How many ways the invariants were broken (0 when all hold)."""
    return (
        numbers["items with two open checkouts"]
        + numbers["checkouts without their verdict"]
        + abs(numbers["CHECKED_OUT verdicts"] - numbers["checkouts"])
        + abs(
            numbers["RETURNED verdicts"] + numbers["RETURNED_TO_HOLD verdicts"] - numbers["returns"]
        )
        + numbers["passes opening two sessions"]
        + numbers["verdicts without their audit row"]
        + numbers["audit chain broken"]
        # A hold is allocated at most once per return, and only one per item at a time.
        + abs(numbers["RETURNED_TO_HOLD verdicts"] - numbers["returns to the hold shelf"])
        + max(0, numbers["RETURNED_TO_HOLD verdicts"] - numbers["holds allocated"])
        + numbers["items with two ready holds"]
        # A held item goes out once, and only to the member it is held for.
        + numbers["held items out on loan"]
        + numbers["loans taken while held for another"]
        + numbers["holds fulfilled by another member's loan"]
        + numbers["loans overlapping a reservation"]
    )
