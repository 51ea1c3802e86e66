"""The SQLite backend (aiosqlite): WAL, one writer connection, BEGIN IMMEDIATE per write."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import aiosqlite

from broker.messages import Availability, AvailabilityState, KioskConfig, Verdict, encode
from central.errors import MigrationError, StorageError
from central.storage import chain, migrations
from central.storage.admin import AdminTx, AdminWrites
from central.storage.base import (
    AuditEntry,
    CheckoutRow,
    ItemRow,
    KioskRow,
    MemberRow,
    OverdueLoan,
    PassUse,
    SessionRow,
    Tx,
    refusal,
)
from central.storage.chain import ChainedRow, ChainHead
from central.storage.fleet import FleetWrites
from central.storage.kiosk_config import (
    KioskRecord,
    config_from_row,
)
from central.storage.releases import ReleaseWrites
from central.storage.rollout import FLAG, FLAG_SQL, FlagRow, RolloutWrites, flag_from_row

log = logging.getLogger(__name__)

_TS = "%Y-%m-%dT%H:%M:%S.%fZ"


def to_db(moment: datetime) -> str:
    """A fixed-width UTC text timestamp, so text order is time order in SQL."""
    # isoformat with fixed microseconds is the same text as strftime(_TS), several times
    # faster; this runs a dozen times per scan.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_db(text: str) -> datetime:
    """The inverse of :func:`to_db`."""
    return datetime.fromisoformat(text)


def _opt(text: str | None) -> datetime | None:
    return None if text is None else from_db(text)


# SQLite result codes (the low byte) that say the database cannot be used right now:
# BUSY, LOCKED, NOMEM, READONLY, INTERRUPT, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB.
_UNAVAILABLE = frozenset({5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 26})


class _Done(NamedTuple):
    rowcount: int
    lastrowid: int | None


class SqliteTx:
    """One ``BEGIN IMMEDIATE`` transaction: the database write lock is held from the start.

    Statements run through aiosqlite (one thread hop each) by default; :class:`DirectTx`
    runs them straight on a connection, for whole transactions on the writer thread.
    """

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def _one(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        async with self._db.execute(sql, args) as cur:
            row = await cur.fetchone()
        return None if row is None else tuple(row)

    async def _exec(self, sql: str, args: tuple[Any, ...]) -> _Done:
        cur = await self._db.execute(sql, args)
        return _Done(cur.rowcount, cur.lastrowid)

    async def find_verdict(self, kiosk_id: str, event_id: str) -> Verdict | None:
        row = await self._one(
            "SELECT verdict FROM scan_events WHERE kiosk_id = ? AND event_id = ?",
            kiosk_id,
            event_id,
        )
        return None if row is None else Verdict.model_validate_json(row[0])

    async def save_verdict(
        self,
        verdict: Verdict,
        code_hash: str | None,
        scanned_at: datetime,
        payload: bytes | None = None,
    ) -> None:
        await self._exec(
            "INSERT INTO scan_events (event_id, kiosk_id, code_hash, scanned_at, decided_at,"
            " reason, verdict) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                verdict.event_id,
                verdict.kiosk_id,
                code_hash,
                to_db(scanned_at),
                to_db(verdict.decided_at),
                verdict.reason.value,
                (payload or encode(verdict)).decode(),
            ),
        )

    async def kiosk(self, kiosk_id: str) -> KioskRow | None:
        row = await self._one(
            "SELECT kiosk_id, shelf_id, retired, blocked_until, config_version,"
            " session_timeout_s, return_point FROM kiosks WHERE kiosk_id = ?",
            kiosk_id,
        )
        if row is None:
            return None
        return KioskRow(row[0], row[1], bool(row[2]), _opt(row[3]), row[4], row[5], bool(row[6]))

    async def member(self, member_id: str) -> MemberRow | None:
        row = await self._one(
            "SELECT member_id, name, suspended, checkout_limit FROM members WHERE member_id = ?",
            member_id,
        )
        return None if row is None else MemberRow(row[0], row[1], bool(row[2]), row[3])

    async def item(self, item_id: str) -> ItemRow | None:
        # The whole database is already locked by BEGIN IMMEDIATE: no row lock needed.
        row = await self._one(
            "SELECT item_id, shelf_id, name, label_version, state, loan_days FROM items"
            " WHERE item_id = ?",
            item_id,
        )
        return None if row is None else ItemRow(*row)

    async def open_session(self, kiosk_id: str, now: datetime) -> SessionRow | None:
        row = await self._one(
            "SELECT session_id, kiosk_id, member_id, expires_at FROM sessions"
            " WHERE kiosk_id = ? AND closed_at IS NULL AND expires_at > ?",
            kiosk_id,
            to_db(now),
        )
        return None if row is None else SessionRow(row[0], row[1], row[2], from_db(row[3]))

    async def close_sessions(self, kiosk_id: str, now: datetime) -> int:
        cur = await self._exec(
            "UPDATE sessions SET closed_at = ? WHERE kiosk_id = ? AND closed_at IS NULL",
            (to_db(now), kiosk_id),
        )
        return cur.rowcount

    async def consume_pass(
        self, pass_id: str, member_id: str, kiosk_id: str, now: datetime
    ) -> PassUse:
        # A conditional update: whoever flips consumed_at first wins; the WHERE clause is
        # the single-use rule, the unique sessions.pass_id the backstop.
        cur = await self._exec(
            "UPDATE qr_codes SET consumed_at = ?, consumed_by = ? WHERE pass_id = ?"
            " AND member_id = ? AND consumed_at IS NULL AND invalidated_at IS NULL"
            " AND expires_at > ?",
            (to_db(now), kiosk_id, pass_id, member_id, to_db(now)),
        )
        if cur.rowcount == 1:
            return PassUse.CONSUMED
        row = await self._one(
            "SELECT consumed_at, invalidated_at, expires_at FROM qr_codes"
            " WHERE pass_id = ? AND member_id = ?",
            pass_id,
            member_id,
        )
        if row is None:
            return PassUse.UNKNOWN
        if row[1] is not None:
            return PassUse.INVALIDATED
        if row[0] is not None:
            return PassUse.ALREADY_USED
        return PassUse.EXPIRED

    async def start_session(
        self, kiosk_id: str, member_id: str, pass_id: str, now: datetime, expires_at: datetime
    ) -> SessionRow:
        cur = await self._exec(
            "INSERT INTO sessions (kiosk_id, member_id, pass_id, opened_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (kiosk_id, member_id, pass_id, to_db(now), to_db(expires_at)),
        )
        assert cur.lastrowid is not None
        return SessionRow(cur.lastrowid, kiosk_id, member_id, expires_at)

    async def extend_session(self, session_id: int, expires_at: datetime) -> None:
        await self._exec(
            "UPDATE sessions SET expires_at = ? WHERE session_id = ?",
            (to_db(expires_at), session_id),
        )

    async def open_checkout(self, item_id: str) -> CheckoutRow | None:
        row = await self._one(
            "SELECT checkout_id, item_id, member_id, checked_out_at, due_at FROM checkouts"
            " WHERE item_id = ? AND returned_at IS NULL",
            item_id,
        )
        if row is None:
            return None
        return CheckoutRow(row[0], row[1], row[2], from_db(row[3]), from_db(row[4]))

    async def open_checkout_count(self, member_id: str) -> int:
        row = await self._one(
            "SELECT count(*) FROM checkouts WHERE member_id = ? AND returned_at IS NULL", member_id
        )
        assert row is not None
        return int(row[0])

    async def insert_checkout(
        self,
        item_id: str,
        member_id: str,
        session_id: int,
        kiosk_id: str,
        event_id: str,
        now: datetime,
        due_at: datetime,
    ) -> None:
        await self._exec(
            "INSERT INTO checkouts (item_id, member_id, session_id, kiosk_id, event_id,"
            " checked_out_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (item_id, member_id, session_id, kiosk_id, event_id, to_db(now), to_db(due_at)),
        )

    async def close_checkout(
        self, checkout_id: int, returned_at: datetime, event_id: str, kiosk_id: str
    ) -> None:
        cur = await self._exec(
            "UPDATE checkouts SET returned_at = ?, return_event_id = ?, return_kiosk_id = ?"
            " WHERE checkout_id = ? AND returned_at IS NULL",
            (to_db(returned_at), event_id, kiosk_id, checkout_id),
        )
        if cur.rowcount != 1:
            raise StorageError(f"checkout {checkout_id} was not open")

    async def availability(self, item_id: str, now: datetime, *, bump: bool) -> Availability:
        if bump:
            await self._exec(
                "UPDATE items SET availability_seq = availability_seq + 1 WHERE item_id = ?",
                (item_id,),
            )
        row = await self._one(_AVAILABILITY_SQL + " WHERE i.item_id = ?", item_id)
        if row is None:
            raise StorageError(f"item {item_id} vanished")
        return _availability(row, now)

    async def audit(self, entry: AuditEntry) -> None:
        # BEGIN IMMEDIATE already made this the only writer, so the row is chained as it
        # is written: the head cannot move under us, and nothing is left to seal.
        head = await self._one("SELECT pos, row_hash FROM audit_chain_head WHERE id = 1")
        last = await self._one("SELECT coalesce(max(seq), 0) FROM qr_audit_log")
        if head is None or last is None:
            raise StorageError("the audit chain head is missing")
        pos, prev_hash, seq = int(head[0]) + 1, str(head[1]), int(last[0]) + 1
        detail = json.dumps(entry.detail, sort_keys=True)
        digest = chain.entry_hash(pos, seq, entry, detail, prev_hash)
        await self._exec(
            "INSERT INTO qr_audit_log (seq, at, actor, action, reason, kiosk_id, member_id,"
            " item_id, event_id, detail, chain_pos, prev_hash, row_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                to_db(entry.at),
                entry.actor,
                entry.action,
                entry.reason,
                entry.kiosk_id,
                entry.member_id,
                entry.item_id,
                entry.event_id,
                detail,
                pos,
                prev_hash,
                digest,
            ),
        )
        await self._exec(
            "UPDATE audit_chain_head SET pos = ?, row_hash = ? WHERE id = 1", (pos, digest)
        )

    _flag: FlagRow | None = None

    async def rollout_flag(self) -> FlagRow:
        # Read once per transaction: BEGIN IMMEDIATE keeps any change out until it ends,
        # and a batch of scans shares one transaction.
        if self._flag is None:
            self._flag = flag_from_row(await self._one(FLAG_SQL, FLAG), _opt)
        return self._flag

    async def bucket(self, key: str, now: datetime, full: float) -> tuple[float, datetime]:
        # BEGIN IMMEDIATE already holds the write lock: no row lock needed.
        await self._exec(
            "INSERT INTO rate_buckets (bucket_key, tokens, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (bucket_key) DO NOTHING",
            (key, full, to_db(now)),
        )
        row = await self._one(
            "SELECT tokens, updated_at FROM rate_buckets WHERE bucket_key = ?", key
        )
        assert row is not None
        return float(row[0]), from_db(row[1])

    async def save_bucket(self, key: str, tokens: float, at: datetime) -> None:
        await self._exec(
            "UPDATE rate_buckets SET tokens = ?, updated_at = ? WHERE bucket_key = ?",
            (tokens, to_db(at), key),
        )

    async def recent_failures(self, kiosk_id: str, since: datetime, reasons: Sequence[str]) -> int:
        marks = ", ".join("?" for _ in reasons)
        row = await self._one(
            f"SELECT count(*) FROM scan_events WHERE kiosk_id = ? AND decided_at > ?"  # noqa: S608 - placeholders only
            f" AND reason IN ({marks})",
            kiosk_id,
            to_db(since),
            *reasons,
        )
        assert row is not None
        return int(row[0])

    async def set_blocked_until(self, kiosk_id: str, until: datetime | None) -> bool:
        cur = await self._exec(
            "UPDATE kiosks SET blocked_until = ? WHERE kiosk_id = ?",
            (None if until is None else to_db(until), kiosk_id),
        )
        return cur.rowcount == 1

    async def invalidate_passes(self, now: datetime) -> int:
        cur = await self._exec(
            "UPDATE qr_codes SET invalidated_at = ? WHERE consumed_at IS NULL"
            " AND invalidated_at IS NULL AND expires_at > ?",
            (to_db(now), to_db(now)),
        )
        return cur.rowcount


class DirectTx(SqliteTx):
    """The same transaction run straight on a ``sqlite3`` connection, on its own thread.

    Its methods are coroutines that never suspend, so the ledger's async code runs to the
    end in one ``send`` (see :func:`run_to_end`): a whole batch costs one thread hop.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def _one(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        row = self._conn.execute(sql, args).fetchone()
        return None if row is None else tuple(row)

    async def _exec(self, sql: str, args: tuple[Any, ...]) -> _Done:
        cur = self._conn.execute(sql, args)
        return _Done(cur.rowcount, cur.lastrowid)


_T = TypeVar("_T")


def run_to_end(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine that never suspends, synchronously; refuse one that does."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise StorageError("a transaction on the writer thread tried to wait on the event loop")


_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)

_AVAILABILITY_SQL = (
    "SELECT i.item_id, i.shelf_id, i.name, i.state, i.availability_seq, c.due_at"
    " FROM items i LEFT JOIN checkouts c ON c.item_id = i.item_id AND c.returned_at IS NULL"
)


def _availability(row: Sequence[Any], now: datetime) -> Availability:
    item_id, shelf_id, name, state, seq, due_at = row
    shown = AvailabilityState.CHECKED_OUT if due_at is not None else AvailabilityState(state)
    return Availability(
        item_id=item_id,
        shelf_id=shelf_id,
        name=name,
        state=shown,
        due_at=_opt(due_at),
        seq=seq,
        changed_at=now,
    )


class SqliteStore(AdminWrites, FleetWrites, RolloutWrites, ReleaseWrites):
    """Central's state in one SQLite file (WAL mode)."""

    backend = "sqlite"
    # One writer at a time anyway: deciding a whole batch in one transaction is SQLite's
    # group commit, one fsync for many scans.
    group_commit = True

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 10_000) -> None:
        self._path = str(path)
        self._busy_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        # One writer connection shared by the admin API and migrations: a lock keeps their
        # transactions from interleaving on it.
        self._write_lock = asyncio.Lock()
        # The consumer's batches run on a plain sqlite3 connection owned by one thread:
        # a statement through aiosqlite costs a thread hop, a batch here costs one.
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._writer: sqlite3.Connection | None = None

    def is_conflict(self, exc: BaseException) -> bool:
        """A constraint refused the write (SQLite never deadlocks under BEGIN IMMEDIATE)."""
        return isinstance(exc, sqlite3.IntegrityError)

    def is_unavailable(self, exc: BaseException) -> bool:
        """The database itself failed (locked, full, gone), not one event's data."""
        if isinstance(exc, sqlite3.Error):
            code = getattr(exc, "sqlite_errorcode", None)
            # A closed connection or a failing file is systemic; SQLITE_ERROR from a
            # statement (a bad value, say) belongs to the event that made it.
            return code is None or (code & 0xFF) in _UNAVAILABLE
        return isinstance(exc, StorageError | OSError | TimeoutError)

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self._path, isolation_level=None)
        await db.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
        await db.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a power cut may lose the last commits' durability but never
        # corrupts; central answers only after commit, so a lost commit is a lost verdict
        # the kiosk re-sends (its outbox keeps the scan until a verdict arrives).
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA foreign_keys = ON")
        return db

    async def open(self) -> SqliteStore:
        """Connect (creating the file if needed)."""
        Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._db = await self._connect()
        self._reader = await self._connect()
        loop = asyncio.get_running_loop()
        self._writer = await loop.run_in_executor(self._writer_thread, self._open_writer)
        return self

    def _open_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        for pragma in (
            f"busy_timeout = {int(self._busy_ms)}",
            "journal_mode = WAL",
            "synchronous = NORMAL",
            "foreign_keys = ON",
        ):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    async def run_write(self, work: Callable[[Tx], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer_thread, self._run_on_writer, work)

    def _run_on_writer(self, work: Callable[[Tx], Coroutine[Any, Any, _T]]) -> _T:
        conn = self._writer
        if conn is None:
            raise StorageError("store is not open")
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = run_to_end(work(DirectTx(conn)))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StorageError("store is not open")
        return self._db

    @property
    def _read(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StorageError("store is not open")
        return self._reader

    async def close(self) -> None:
        for db in (self._db, self._reader):
            if db is not None:
                await db.close()
        self._db = self._reader = None
        writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.get_running_loop().run_in_executor(self._writer_thread, writer.close)
        self._writer_thread.shutdown(wait=True)

    async def schema_version(self) -> int:
        """The newest applied migration (0 for an empty database)."""
        async with self._read.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ) as cur:
            if await cur.fetchone() is None:
                return 0
        async with self._read.execute("SELECT max(version) FROM schema_migrations") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def migrate(self, target: int | None = None) -> int:
        """Apply (or undo) migrations until the schema is at ``target`` (default newest).

        One ``BEGIN IMMEDIATE`` transaction reads the version and applies every step, so
        two instances starting on one new file cannot both apply step 1.
        """
        steps = migrations.load("sqlite")
        want = len(steps) if target is None else target
        if not 0 <= want <= len(steps):
            raise MigrationError(f"no schema version {want}")
        async with self._write_lock:
            db = self._conn
            await db.execute("BEGIN IMMEDIATE")
            try:
                have = await self._migrate_locked(db, steps, want)
            except BaseException as exc:
                await db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise MigrationError(f"migration failed: {exc}") from exc
                raise
            await db.execute("COMMIT")
        return have

    @staticmethod
    async def _migrate_locked(
        db: aiosqlite.Connection, steps: list[migrations.Migration], want: int
    ) -> int:
        await db.execute(_SCHEMA_MIGRATIONS)
        async with db.execute("SELECT coalesce(max(version), 0) FROM schema_migrations") as cur:
            row = await cur.fetchone()
        have = int(row[0]) if row else 0
        if have > len(steps):
            raise MigrationError(f"database is at version {have}, newer than this code")
        while have != want:
            up = want > have
            step = steps[have] if up else steps[have - 1]
            for statement in migrations.statements(step.up if up else step.down):
                await db.execute(statement)
            if up:
                await db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (step.version, step.name, to_db(datetime.now(UTC))),
                )
            else:
                await db.execute("DELETE FROM schema_migrations WHERE version = ?", (step.version,))
            log.info(
                "schema %s to version %s (%s)",
                "up" if up else "down",
                step.version if up else step.version - 1,
                step.name,
            )
            have = have + 1 if up else have - 1
        return have

    @asynccontextmanager
    async def write(self) -> AsyncIterator[SqliteTx]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``: the write lock is taken before any read."""
        async with self._write_lock:
            db = self._conn
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteTx(db)
            except BaseException:
                await db.rollback()
                raise
            await db.commit()

    @asynccontextmanager
    async def savepoint(self, tx: Tx) -> AsyncIterator[None]:
        """A nested step inside a write transaction that rolls back alone."""
        assert isinstance(tx, SqliteTx)
        await tx._exec("SAVEPOINT step", ())
        try:
            yield
        except BaseException:
            await tx._exec("ROLLBACK TO step", ())
            await tx._exec("RELEASE step", ())
            raise
        await tx._exec("RELEASE step", ())

    async def _admin_write(self, sql: str, args: tuple[Any, ...], entry: AuditEntry) -> None:
        values = tuple(to_db(a) if isinstance(a, datetime) else a for a in args)
        async with self.write() as tx:
            try:
                await self._conn.execute(sql, values)
            except sqlite3.IntegrityError as exc:
                duplicate = "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc)
                raise StorageError(refusal(entry, duplicate=duplicate)) from exc
            await tx.audit(entry)

    async def get_item(self, item_id: str) -> ItemRow | None:
        async with self._read.execute(
            "SELECT item_id, shelf_id, name, label_version, state, loan_days FROM items"
            " WHERE item_id = ?",
            (item_id,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else ItemRow(*row)

    async def get_member(self, member_id: str) -> MemberRow | None:
        async with self._read.execute(
            "SELECT member_id, name, suspended, checkout_limit FROM members WHERE member_id = ?",
            (member_id,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else MemberRow(row[0], row[1], bool(row[2]), row[3])

    async def all_availability(self, now: datetime) -> Sequence[Availability]:
        async with self._read.execute(_AVAILABILITY_SQL + " ORDER BY i.item_id") as cur:
            rows = await cur.fetchall()
        return [_availability(row, now) for row in rows]

    async def kiosk_configs(self) -> Sequence[KioskConfig]:
        async with self._read.execute(
            "SELECT kiosk_id, shelf_id, config_version, session_timeout_s, device_config"
            " FROM kiosks WHERE retired = 0 ORDER BY kiosk_id"
        ) as cur:
            rows = await cur.fetchall()
        return [config_from_row(r) for r in rows]

    async def audit_tail(self, limit: int) -> Sequence[AuditEntry]:
        async with self._read.execute(
            "SELECT at, actor, action, reason, kiosk_id, member_id, item_id, event_id, detail"
            " FROM (SELECT * FROM qr_audit_log ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (limit,),
        ) as cur:
            rows = await cur.fetchall()
        return [
            AuditEntry(from_db(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]))
            for r in rows
        ]

    @asynccontextmanager
    async def _admin_tx(self) -> AsyncIterator[_SqliteAdminTx]:
        async with self.write() as tx:
            yield _SqliteAdminTx(tx)

    async def _admin_read(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        async with self._read.execute(sql, _values(args)) as cur:
            return [tuple(r) for r in await cur.fetchall()]

    async def _admin_chunk(self, work: Callable[[AdminTx], Awaitable[_T]]) -> _T:
        # On the writer thread, in one hop: the chunk never waits on the event loop while
        # it holds the write lock, and queues behind (never inside) a batch of scans.
        async def on_writer(tx: Tx) -> _T:
            assert isinstance(tx, DirectTx)
            return await work(_DirectAdminTx(tx))

        return await self.run_write(on_writer)

    # -- the hooks central/storage/rollout.py writes its SQL through --------------------------

    def _rollout_tx(self) -> AbstractAsyncContextManager[Tx]:
        return self.write()

    async def _tx_one(self, tx: Tx, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        assert isinstance(tx, SqliteTx)
        return await tx._one(sql, *_values(args))

    async def _tx_exec(self, tx: Tx, sql: str, args: tuple[Any, ...]) -> int:
        assert isinstance(tx, SqliteTx)
        return (await tx._exec(sql, _values(args))).rowcount

    async def _read_one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        async with self._read.execute(sql, _values(args)) as cur:
            row = await cur.fetchone()
        return None if row is None else tuple(row)

    async def _read_all(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with self._read.execute(sql, _values(args)) as cur:
            return [tuple(row) for row in await cur.fetchall()]

    def _moment(self, value: Any) -> datetime | None:
        return _opt(value)

    async def kiosk_records(self) -> Sequence[KioskRecord]:
        async with self._read.execute(
            "SELECT kiosk_id, shelf_id, config_version, session_timeout_s, device_config"
            ", retired, blocked_until, return_point FROM kiosks ORDER BY kiosk_id"
        ) as cur:
            rows = await cur.fetchall()
        return [KioskRecord(config_from_row(r), bool(r[5]), _opt(r[6]), bool(r[7])) for r in rows]

    async def audit_head(self) -> ChainHead:
        async with self._read.execute(_HEAD_SQL) as cur:
            row = await cur.fetchone()
        if row is None:
            raise StorageError("the audit chain head is missing")
        return ChainHead(int(row[0]), int(row[1]), str(row[2]), int(row[3]))

    async def audit_rows(
        self,
        after_seq: int,
        limit: int,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Sequence[ChainedRow]:
        async with self._read.execute(
            _CHAINED_SQL + " WHERE seq > ? AND at >= ? AND at < ? ORDER BY seq LIMIT ?",
            (
                after_seq,
                to_db(since) if since else "",
                to_db(until) if until else "~",  # after every digit in text order
                limit,
            ),
        ) as cur:
            rows = await cur.fetchall()
        return [ChainedRow(r[0], from_db(r[1]), *r[2:]) for r in rows]

    async def audit_chain_rows(self, after_pos: int, limit: int) -> Sequence[ChainedRow]:
        async with self._read.execute(
            _CHAINED_SQL + " WHERE chain_pos > ? ORDER BY chain_pos LIMIT ?", (after_pos, limit)
        ) as cur:
            rows = await cur.fetchall()
        return [ChainedRow(r[0], from_db(r[1]), *r[2:]) for r in rows]

    async def seal_audit(self) -> int:
        """Nothing to seal: every row was chained as it was written."""
        return 0

    async def overdue_loans(self, now: datetime) -> Sequence[OverdueLoan]:
        async with self._read.execute(_OVERDUE_SQL, (to_db(now),)) as cur:
            rows = await cur.fetchall()
        return [OverdueLoan(r[0], r[1], r[2], r[3], from_db(r[4]), from_db(r[5])) for r in rows]

    def backup_to(self, target: Path, *, pages_per_step: int = 256) -> None:
        """Copy the live database to ``target`` with SQLite's online backup API.

        Runs on its own connection, a few pages at a time, so central keeps writing: a
        write between steps restarts the copy of what changed, and the result is one
        consistent snapshot. Blocking; call it from a thread.
        """
        with (
            contextlib.closing(sqlite3.connect(self._path)) as source,
            contextlib.closing(sqlite3.connect(target)) as copy,
        ):
            source.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
            source.backup(copy, pages=pages_per_step)


class _SqliteAdminTx:
    """:class:`central.storage.admin.AdminTx` on the aiosqlite writer transaction."""

    def __init__(self, tx: SqliteTx) -> None:
        self.tx: Tx = tx
        self._sqlite = tx

    async def fetch(self, sql: str, args: tuple[Any, ...], *, lock: bool = False) -> list[Any]:
        # BEGIN IMMEDIATE already holds the whole database: ``lock`` needs nothing more.
        async with self._sqlite._db.execute(sql, _values(args)) as cur:
            return [tuple(r) for r in await cur.fetchall()]

    async def run(self, sql: str, args: tuple[Any, ...]) -> int:
        try:
            done = await self._sqlite._exec(sql, _values(args))
        except sqlite3.IntegrityError as exc:
            raise StorageError(f"the database refused the change: {exc}") from exc
        return done.rowcount


class _DirectAdminTx:
    """:class:`central.storage.admin.AdminTx` straight on the writer thread's connection."""

    def __init__(self, tx: DirectTx) -> None:
        self.tx: Tx = tx
        self._conn = tx._conn

    async def fetch(self, sql: str, args: tuple[Any, ...], *, lock: bool = False) -> list[Any]:
        return [tuple(r) for r in self._conn.execute(sql, _values(args)).fetchall()]

    async def run(self, sql: str, args: tuple[Any, ...]) -> int:
        try:
            return self._conn.execute(sql, _values(args)).rowcount
        except sqlite3.IntegrityError as exc:
            raise StorageError(f"the database refused the change: {exc}") from exc


def _values(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(to_db(a) if isinstance(a, datetime) else a for a in args)


_CHAINED_SQL = (
    "SELECT seq, at, actor, action, reason, kiosk_id, member_id, item_id, event_id, detail,"
    " chain_pos, prev_hash, row_hash FROM qr_audit_log"
)
_HEAD_SQL = (
    "SELECT genesis_seq, pos, row_hash, (SELECT count(*) FROM qr_audit_log"
    " WHERE chain_pos IS NULL AND seq > genesis_seq) FROM audit_chain_head WHERE id = 1"
)
_OVERDUE_SQL = (
    "SELECT c.member_id, m.name, c.item_id, i.name, c.checked_out_at, c.due_at"
    " FROM checkouts c JOIN members m ON m.member_id = c.member_id"
    " JOIN items i ON i.item_id = c.item_id"
    " WHERE c.returned_at IS NULL AND c.due_at < ? ORDER BY c.due_at, c.item_id"
)


def due(now: datetime, loan_days: int) -> datetime:
    """When a loan made ``now`` is due back."""
    return now + timedelta(days=loan_days)
