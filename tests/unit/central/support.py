"""Builders shared by central's unit tests: a migrated SQLite store, a signer, a small library."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from broker.messages import CodeScan, SessionDone
from central import ledger
from central.storage.sqlite import SqliteStore
from central.tokens import KeyRing, TokenSigner, new_id

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


async def seed(store: SqliteStore, now: datetime) -> None:
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
    store: SqliteStore,
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
    store: SqliteStore,
    signer: TokenSigner,
    event: CodeScan | SessionDone,
    now: datetime,
) -> ledger.Outcome:
    """Verify and apply one event the way the consumer does: one write, one savepoint."""
    token = signer.verify(event.code, now) if isinstance(event, CodeScan) else None
    async with store.write() as tx, store.savepoint(tx):
        return await ledger.apply(tx, event, token, now)


def sql(path: Path, statement: str, *args: Any) -> list[Any]:
    """Run one statement on a plain sqlite3 connection (outside the store) and commit."""
    with closing(sqlite3.connect(path)) as db, db:
        return db.execute(statement, args).fetchall()
