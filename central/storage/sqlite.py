"""The SQLite backend (aiosqlite): WAL, one writer connection, BEGIN IMMEDIATE per write."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from central.errors import MigrationError, StorageError
from central.storage import chain, migrations
from central.storage.admin import AdminTx, AdminWrites
from central.storage.base import (
    AuditEntry,
    Tx,
    refusal,
)
from central.storage.dialect import SQLITE, from_db, to_db
from central.storage.fleet import FleetWrites
from central.storage.reads import StoreReads
from central.storage.releases import ReleaseWrites
from central.storage.rollout import RolloutWrites
from central.storage.scan_tx import ScanTx

log = logging.getLogger(__name__)


def _opt(text: str | None) -> datetime | None:
    return None if text is None else from_db(text)


# SQLite result codes (the low byte) that say the database cannot be used right now:
# BUSY, LOCKED, NOMEM, READONLY, INTERRUPT, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB.
_UNAVAILABLE = frozenset({5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 26})


class SqliteTx(ScanTx):
    """One ``BEGIN IMMEDIATE`` transaction: the database write lock is held from the start.

    Statements run through aiosqlite (one thread hop each) by default; :class:`DirectTx`
    runs them straight on a connection, for whole transactions on the writer thread. The
    queries are :class:`central.storage.scan_tx.ScanTx`'s.
    """

    dialect = SQLITE
    # The audit chain's (pos, hash, seq) after this transaction's last audit row.
    _chain: tuple[int, str, int] | None = None
    # Whether audit_chain_head lags _chain: it is written once, at commit (see finish).
    _head_behind = False

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def _one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        async with self._db.execute(sql, args) as cur:
            row = await cur.fetchone()
        return None if row is None else tuple(row)

    async def _exec(self, sql: str, args: tuple[Any, ...]) -> int:
        cur = await self._db.execute(sql, args)
        return cur.rowcount

    async def _all(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with self._db.execute(sql, args) as cur:
            return [tuple(row) for row in await cur.fetchall()]

    async def audit(self, entry: AuditEntry) -> None:
        # BEGIN IMMEDIATE already made this the only writer, so the row is chained as it
        # is written: the head cannot move under us, and nothing is left to seal.
        # The head is read once per transaction and then carried here (a batch writes
        # a hundred audit rows), and written back once, at commit (finish); a rolled-back
        # savepoint puts it back where it stood before the step (see savepoint).
        if self._chain is None:
            head = await self._one("SELECT pos, row_hash FROM audit_chain_head WHERE id = 1", ())
            last = await self._one("SELECT coalesce(max(seq), 0) FROM qr_audit_log", ())
            if head is None or last is None:
                raise StorageError("the audit chain head is missing")
            self._chain = (int(head[0]), str(head[1]), int(last[0]))
        pos, prev_hash, seq = self._chain[0] + 1, self._chain[1], self._chain[2] + 1
        detail = chain.detail_text(entry.detail)
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
        self._chain = (pos, digest, seq)
        self._head_behind = True

    async def finish(self) -> None:
        """Write the chain's head once, just before commit (not once per audit row)."""
        if self._head_behind and self._chain is not None:
            await self._exec(
                "UPDATE audit_chain_head SET pos = ?, row_hash = ? WHERE id = 1",
                (self._chain[0], self._chain[1]),
            )
            self._head_behind = False


class DirectTx(SqliteTx):
    """The same transaction run straight on a ``sqlite3`` connection, on its own thread.

    Its methods are coroutines that never suspend, so the ledger's async code runs to the
    end in one ``send`` (see :func:`run_to_end`): a whole batch costs one thread hop.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def _one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row = self._conn.execute(sql, args).fetchone()
        return None if row is None else tuple(row)

    async def _exec(self, sql: str, args: tuple[Any, ...]) -> int:
        return self._conn.execute(sql, args).rowcount

    async def _all(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._conn.execute(sql, args).fetchall()]


_T = TypeVar("_T")


def run_to_end(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine that never suspends, synchronously; refuse one that does."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise StorageError("a transaction on the writer thread tried to wait on the event loop")


# The writer's own automatic checkpoint, 16 MiB of WAL at 4 KiB pages: reached only if
# the checkpointer falls behind (SQLite's default is 1,000 pages).
_WRITER_CHECKPOINT_PAGES = 4_000
_CHECKPOINT_EVERY_S = 0.2


class _Checkpointer:
    """Copies the WAL back into the database file from its own thread and connection.

    With SQLite's automatic checkpoint, the commit that crosses 1,000 pages of WAL copies
    them back itself, on the writer thread, while every scan behind it waits; a PASSIVE
    checkpoint here does the same work beside the writer (the sqlite3 module lets go of
    the GIL while SQLite works) and never blocks it or any reader.
    """

    def __init__(self, path: str, busy_ms: int) -> None:
        self._stopping = threading.Event()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        self.failures = 0  # in a row; logged when a streak starts and when it ends
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(_CHECKPOINT_EVERY_S):
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:  # the writer's backstop still bounds the WAL
                # Five tries a second: a disk that stays full must not flood the log.
                if not self.failures:
                    log.warning("WAL checkpoint failed", exc_info=True)
                self.failures += 1
                continue
            if self.failures:
                log.warning("WAL checkpoint works again after %s failures", self.failures)
                self.failures = 0
        self._conn.close()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()


_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)


class SqliteStore(StoreReads, AdminWrites, FleetWrites, RolloutWrites, ReleaseWrites):
    """Central's state in one SQLite file (WAL mode)."""

    dialect = SQLITE

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
        self._checkpointer: _Checkpointer | None = None

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
        self._checkpointer = _Checkpointer(self._path, self._busy_ms)
        return self

    def _open_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        for pragma in (
            f"busy_timeout = {int(self._busy_ms)}",
            "journal_mode = WAL",
            "synchronous = NORMAL",
            "foreign_keys = ON",
            # The checkpointer thread copies the WAL back into the file; the writer does it
            # itself only if that falls this far behind (a backstop on the WAL's size).
            f"wal_autocheckpoint = {_WRITER_CHECKPOINT_PAGES}",
        ):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    async def run_write(self, work: Callable[[Tx], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction on the writer thread."""
        # Running it on the event loop instead (no GIL hand-off at every statement) was
        # measured and lost: the loop reads no scans while a batch runs, so batches shrink
        # and each scan pays more of a commit (docs/benchmarks.md, issue 18).
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer_thread, self._run_on_writer, work)

    def _run_on_writer(self, work: Callable[[Tx], Coroutine[Any, Any, _T]]) -> _T:
        conn = self._writer
        if conn is None:
            raise StorageError("store is not open")
        conn.execute("BEGIN IMMEDIATE")
        try:
            tx = DirectTx(conn)
            result = run_to_end(work(tx))
            run_to_end(tx.finish())
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
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await asyncio.get_running_loop().run_in_executor(None, checkpointer.stop)
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
            tx = SqliteTx(db)
            try:
                yield tx
                await tx.finish()
            except BaseException:
                await db.rollback()
                raise
            await db.commit()

    @asynccontextmanager
    async def savepoint(self, tx: Tx) -> AsyncIterator[None]:
        """A nested step inside a write transaction that rolls back alone."""
        assert isinstance(tx, SqliteTx)
        await tx._exec("SAVEPOINT step", ())
        chain, behind = tx._chain, tx._head_behind
        try:
            yield
        except BaseException:
            await tx._exec("ROLLBACK TO step", ())
            await tx._exec("RELEASE step", ())
            # The step's audit rows are gone: the chain goes on from where it stood before.
            tx._chain, tx._head_behind = chain, behind
            raise
        await tx._exec("RELEASE step", ())

    async def _admin_write(
        self,
        sql: str,
        args: tuple[Any, ...],
        entry: AuditEntry,
        then: Callable[[Tx], Awaitable[None]] | None = None,
    ) -> None:
        values = tuple(to_db(a) if isinstance(a, datetime) else a for a in args)
        async with self.write() as tx:
            try:
                await self._conn.execute(sql, values)
            except sqlite3.IntegrityError as exc:
                duplicate = "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc)
                raise StorageError(refusal(entry, duplicate=duplicate)) from exc
            await tx.audit(entry)
            if then is not None:
                await then(tx)

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
        return await tx._one(sql, _values(args))

    async def _tx_exec(self, tx: Tx, sql: str, args: tuple[Any, ...]) -> int:
        assert isinstance(tx, SqliteTx)
        return await tx._exec(sql, _values(args))

    async def _read_one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        async with self._read.execute(sql, _values(args)) as cur:
            row = await cur.fetchone()
        return None if row is None else tuple(row)

    async def _read_all(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with self._read.execute(sql, _values(args)) as cur:
            return [tuple(row) for row in await cur.fetchall()]

    def _moment(self, value: Any) -> datetime | None:
        return _opt(value)

    async def seal_audit(self) -> int:
        """Nothing to seal: every row was chained as it was written."""
        return 0

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
            return await self._sqlite._exec(sql, _values(args))
        except sqlite3.IntegrityError as exc:
            raise StorageError(f"the database refused the change: {exc}") from exc


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


def due(now: datetime, loan_days: int) -> datetime:
    """When a loan made ``now`` is due back."""
    return now + timedelta(days=loan_days)
