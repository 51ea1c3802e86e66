"""Builders shared by central's storage tests: stores, a signer, a small library, raw SQL.

The tests under ``tests/integration/storage`` run every storage and ledger test on both
backends; :func:`query` and :func:`execute` let them read and poke the database behind the
rules on either one, with one spelling of the SQL.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

from broker.messages import AnyEvent, CodeScan, SessionDone
from central import ledger
from central.storage.base import Store
from central.storage.dialect import from_db, to_db
from central.storage.postgres import PostgresStore
from central.storage.sqlite import SqliteStore
from central.tokens import KeyRing, TokenSigner, new_id

# Both backends, where a test needs more than the Store protocol (migrate to a target,
# schema_version, a raw connection).
AnyStore: TypeAlias = SqliteStore | PostgresStore

ADMIN = "admin:test"
KEY = bytes(range(32))

SHELF = "SHELF-A"
KIOSK_A = "KIOSK-A"
KIOSK_B = "KIOSK-B"
DRILL = "DRILL-01"  # loan_days 7
SAW = "SAW-01"  # loan_days 14
RAKE = "RAKE-01"  # loan_days 14
ADA = "M-1"  # checkout_limit 2
GRACE = "M-2"  # checkout_limit 5
NAMES = {ADA: "Ada", GRACE: "Grace"}
LIMITS = {ADA: 2, GRACE: 5}
ITEMS = (DRILL, SAW, RAKE)
SESSION_TIMEOUT_S = 60.0


def make_signer() -> TokenSigner:
    """A signer with one fixed test key."""
    return TokenSigner(KeyRing({"K1": KEY}, "K1"))


async def open_store(path: Path) -> SqliteStore:
    """A real SQLite store at ``path``, migrated to the newest schema."""
    store = await SqliteStore(path).open()
    await store.migrate()
    return store


async def seed(store: Store, now: datetime) -> None:
    """One shelf, three items, two members and two kiosks."""
    await store.add_shelf(SHELF, "Power tools", now, ADMIN)
    await store.add_item(DRILL, SHELF, "Cordless drill", now, ADMIN, loan_days=7)
    await store.add_item(SAW, SHELF, "Jigsaw", now, ADMIN)
    await store.add_item(RAKE, SHELF, "Leaf rake", now, ADMIN)
    for member_id, name in NAMES.items():
        await store.add_member(member_id, name, now, ADMIN, checkout_limit=LIMITS[member_id])
    for kiosk_id in (KIOSK_A, KIOSK_B):
        await store.add_kiosk(kiosk_id, SHELF, now, ADMIN, session_timeout_s=SESSION_TIMEOUT_S)


async def issue_pass(
    store: Store,
    signer: TokenSigner,
    member_id: str,
    now: datetime,
    ttl: timedelta = timedelta(hours=1),
) -> tuple[str, str]:
    """Record a pass for ``member_id`` and sign its code; (pass id, code)."""
    pass_id = new_id()
    expires_at = now + ttl
    await store.issue_pass(pass_id, member_id, now, expires_at, ADMIN)
    return pass_id, signer.member_pass(pass_id, member_id, expires_at)


def code_scan(
    kiosk_id: str,
    code: str,
    scanned_at: datetime,
    *,
    queued: bool = False,
) -> CodeScan:
    """A scan event as a kiosk publishes it."""
    return CodeScan(
        event_id=uuid.uuid4().hex,
        kiosk_id=kiosk_id,
        code=code,
        scanned_at=scanned_at,
        queued=queued,
    )


def session_done(kiosk_id: str, at: datetime) -> SessionDone:
    """The member pressed "done" at ``kiosk_id``."""
    return SessionDone(event_id=uuid.uuid4().hex, kiosk_id=kiosk_id, scanned_at=at)


async def decide(
    store: Store,
    signer: TokenSigner,
    event: AnyEvent,
    now: datetime,
) -> ledger.Outcome:
    """Verify and apply one event the way the consumer does on this backend.

    A group-committing backend (SQLite) decides each event in a savepoint of the batch's
    transaction; the others (PostgreSQL) give each event its own transaction.
    """
    token = signer.verify(event.code, now) if isinstance(event, CodeScan) else None
    async with store.write() as tx:
        if not store.group_commit:
            return await ledger.apply(tx, event, token, now)
        async with store.savepoint(tx):
            return await ledger.apply(tx, event, token, now)


_PLACEHOLDER = re.compile(r"\?")
_SQLITE_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def _numbered(statement: str) -> str:
    """``?`` placeholders respelled as PostgreSQL's ``$1, $2, …``."""
    counter = iter(range(1, statement.count("?") + 1))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", statement)


def _from_sqlite(value: object) -> object:
    # SQLite keeps times as fixed-width text (central.storage.sqlite.to_db); nothing else
    # the schema stores has that exact shape, so it is safe to read back as a datetime.
    if isinstance(value, str) and _SQLITE_TIMESTAMP.fullmatch(value):
        return from_db(value)
    return value


async def query(store: Store, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement on ``store``'s own connection(s); its rows as tuples.

    Spelled with ``?`` placeholders, respelled for PostgreSQL. A datetime argument is stored
    the way the backend stores times, and times come back as aware UTC datetimes on both, so
    tests compare times, not text; booleans come back as 0/1 on SQLite, which compare equal
    to False/True.

    It writes outside the rules and outside ``store.write()``: on SQLite it runs on the
    writer connection in autocommit mode, so never call it inside an open ``store.write()``
    (it would join that transaction on SQLite and not on PostgreSQL).
    """
    if isinstance(store, PostgresStore):
        records = await store.pool.fetch(_numbered(statement), *args)
        return [tuple(record) for record in records]
    if isinstance(store, SqliteStore):
        params = tuple(to_db(arg) if isinstance(arg, datetime) else arg for arg in args)
        async with store._conn.execute(statement, params) as cursor:
            rows = await cursor.fetchall()
        return [tuple(_from_sqlite(value) for value in row) for row in rows]
    raise TypeError(f"no raw SQL for {type(store).__name__}")


async def execute(store: Store, statement: str, *args: Any) -> None:
    """Run one writing statement on ``store`` (see :func:`query`), committed at once."""
    await query(store, statement, *args)


def sql(path: Path, statement: str, *args: Any) -> list[Any]:
    """Run one statement on a plain sqlite3 connection (outside the store) and commit.

    For SQLite-only checks of the file itself; everything else uses :func:`query`.
    """
    with closing(sqlite3.connect(path)) as db, db:
        return db.execute(statement, args).fetchall()
