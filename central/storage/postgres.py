"""The PostgreSQL backend (asyncpg): several central instances share one database.

A batch of scans is decided in one transaction, one statement per round
(:mod:`central.storage.scan_batch`); a scan decided alone has its own short transaction.
Both take their locks in one fixed order — the kiosk's event id (advisory lock), then the
kiosk row, then the rate buckets, the item row, its holds, the member row, the pass — so
two instances never wait on each other in a cycle, and the constraints (partial unique
indexes, unique pass and event ids) refuse whatever a logic slip lets by.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from central.errors import MigrationError, StorageError
from central.storage import chain, migrations
from central.storage.admin import AdminTx, AdminWrites
from central.storage.base import (
    AuditEntry,
    Tx,
    refusal,
)
from central.storage.chain import ChainedRow
from central.storage.dialect import POSTGRES, numbered
from central.storage.fleet import FleetWrites
from central.storage.reads import CHAINED_SQL, StoreReads
from central.storage.releases import ReleaseWrites
from central.storage.rollout import RolloutWrites
from central.storage.scan_tx import ScanTx

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Any constant will do; it only keeps two instances from migrating at the same moment.
_MIGRATION_LOCK = 0x43533031
_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)


class PostgresTx(ScanTx):
    """One READ COMMITTED transaction whose row locks are taken as it reads.

    The queries are :class:`central.storage.scan_tx.ScanTx`'s, spelled for PostgreSQL by
    :data:`central.storage.dialect.POSTGRES`.
    """

    dialect = POSTGRES

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @property
    def conn(self) -> asyncpg.Connection:
        """The connection this transaction runs on."""
        return self._conn

    async def _one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row = await self._conn.fetchrow(numbered(sql), *args)
        return None if row is None else tuple(row)

    async def _exec(self, sql: str, args: tuple[Any, ...]) -> int:
        return _count(await self._conn.execute(numbered(sql), *args))

    async def _all(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self._conn.fetch(numbered(sql), *args)]

    async def audit(self, entry: AuditEntry) -> None:
        # A plain append: the sealer chains it a moment after commit (see seal_audit).
        await self._conn.execute(
            "INSERT INTO qr_audit_log (at, actor, action, reason, kiosk_id, member_id,"
            " item_id, event_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            entry.at,
            entry.actor,
            entry.action,
            entry.reason,
            entry.kiosk_id,
            entry.member_id,
            entry.item_id,
            entry.event_id,
            chain.detail_text(entry.detail),
        )


def _count(status: str) -> int:
    """The row count in an asyncpg command status such as ``UPDATE 1``."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresStore(StoreReads, AdminWrites, FleetWrites, RolloutWrites, ReleaseWrites):
    """Central's state in PostgreSQL, shared by every central instance."""

    dialect = POSTGRES

    backend = "postgres"
    # Not the savepoint-per-event group commit: a transaction spanning a batch that way
    # would hold one event's locks while taking the next event's, and two instances could
    # deadlock. A batch here takes all its locks first (central/scan_rounds.py).
    group_commit = False

    def __init__(self, dsn: str, *, min_size: int = 2, max_size: int = 10) -> None:
        self._dsn = dsn
        self._sizes = (min_size, max_size)
        self._pool: asyncpg.Pool | None = None

    def is_unavailable(self, exc: BaseException) -> bool:
        """The database itself failed (down, out of resources, shutting down), not one
        event's data."""
        return isinstance(
            exc,
            asyncpg.PostgresConnectionError
            | asyncpg.InterfaceError
            | asyncpg.InsufficientResourcesError
            | asyncpg.OperatorInterventionError
            | asyncpg.PostgresSystemError
            | asyncpg.LockNotAvailableError
            | StorageError
            | OSError
            | TimeoutError,
        )

    def is_conflict(self, exc: BaseException) -> bool:
        """A constraint refused the write, or PostgreSQL broke a deadlock or conflict."""
        return isinstance(
            exc,
            asyncpg.IntegrityConstraintViolationError
            | asyncpg.DeadlockDetectedError
            | asyncpg.SerializationError,
        )

    async def open(self) -> PostgresStore:
        """Connect the pool."""
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=self._sizes[0], max_size=self._sizes[1]
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StorageError(f"cannot connect to PostgreSQL: {exc}") from exc
        return self

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool (open)."""
        if self._pool is None:
            raise StorageError("store is not open")
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def schema_version(self) -> int:
        """The newest applied migration (0 for an empty database)."""
        async with self.pool.acquire() as conn:
            if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
                return 0
            version = await conn.fetchval("SELECT max(version) FROM schema_migrations")
        return int(version or 0)

    async def migrate(self, target: int | None = None) -> int:
        """Apply (or undo) migrations until the schema is at ``target`` (default newest)."""
        steps = migrations.load("postgres")
        want = len(steps) if target is None else target
        if not 0 <= want <= len(steps):
            raise MigrationError(f"no schema version {want}")
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                # Under the lock: CREATE TABLE IF NOT EXISTS races with itself otherwise.
                await conn.execute(_SCHEMA_MIGRATIONS)
                have = int(
                    await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
                )
                if have > len(steps):
                    raise MigrationError(f"database is at version {have}, newer than this code")
                while have != want:
                    up = want > have
                    step = steps[have] if up else steps[have - 1]
                    try:
                        async with conn.transaction():
                            await conn.execute(step.up if up else step.down)
                            if up:
                                await conn.execute(
                                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                    step.version,
                                    step.name,
                                )
                            else:
                                await conn.execute(
                                    "DELETE FROM schema_migrations WHERE version = $1", step.version
                                )
                    except asyncpg.PostgresError as exc:
                        raise MigrationError(f"migration {step.version} failed: {exc}") from exc
                    log.info(
                        "schema %s to version %s (%s)",
                        "up" if up else "down",
                        step.version if up else step.version - 1,
                        step.name,
                    )
                    have = have + 1 if up else have - 1
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        return have

    @asynccontextmanager
    async def write(self) -> AsyncIterator[PostgresTx]:
        """One short transaction on a pooled connection."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield PostgresTx(conn)

    async def run_write(self, work: Callable[[Tx], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``work`` in one transaction."""
        async with self.write() as tx:
            return await work(tx)

    @asynccontextmanager
    async def savepoint(self, tx: Tx) -> AsyncIterator[None]:
        """A nested step (a SAVEPOINT) that rolls back alone."""
        assert isinstance(tx, PostgresTx)
        async with tx.conn.transaction():
            yield

    async def _admin_write(
        self,
        sql: str,
        args: tuple[Any, ...],
        entry: AuditEntry,
        then: Callable[[Tx], Awaitable[None]] | None = None,
    ) -> None:
        statement = numbered(sql)
        async with self.write() as tx:
            try:
                await tx.conn.execute(statement, *args)
            except asyncpg.IntegrityConstraintViolationError as exc:
                duplicate = isinstance(exc, asyncpg.UniqueViolationError)
                raise StorageError(refusal(entry, duplicate=duplicate)) from exc
            await tx.audit(entry)
            if then is not None:
                await then(tx)

    @asynccontextmanager
    async def _admin_tx(self) -> AsyncIterator[_PostgresAdminTx]:
        async with self.write() as tx:
            yield _PostgresAdminTx(tx)

    async def _admin_read(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        return [tuple(r) for r in await self.pool.fetch(numbered(sql), *args)]

    async def _admin_chunk(self, work: Callable[[AdminTx], Awaitable[_T]]) -> _T:
        async with self._admin_tx() as atx:
            return await work(atx)

    # -- the hooks central/storage/rollout.py writes its SQL through --------------------------

    def _rollout_tx(self) -> AbstractAsyncContextManager[Tx]:
        return self.write()

    async def _tx_one(self, tx: Tx, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        assert isinstance(tx, PostgresTx)
        row = await tx.conn.fetchrow(numbered(sql), *args)
        return None if row is None else tuple(row)

    async def _tx_exec(self, tx: Tx, sql: str, args: tuple[Any, ...]) -> int:
        assert isinstance(tx, PostgresTx)
        return _count(await tx.conn.execute(numbered(sql), *args))

    async def _read_one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row = await self.pool.fetchrow(numbered(sql), *args)
        return None if row is None else tuple(row)

    async def _read_all(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self.pool.fetch(numbered(sql), *args)]

    def _moment(self, value: Any) -> datetime | None:
        return value  # type: ignore[no-any-return]  # asyncpg hands back aware datetimes

    async def seal_audit(self, batch: int = 2000) -> int:
        """Chain every committed unsealed row, oldest seq first; how many were sealed.

        The head row's lock makes sealers (one per instance) take turns; writers never
        touch the head, so sealing never holds up a scan. A row whose transaction commits
        after a younger one was sealed is chained later, at the next place.
        """
        sealed = 0
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                head = await conn.fetchrow(
                    "SELECT genesis_seq, pos, row_hash FROM audit_chain_head"
                    " WHERE id = 1 FOR UPDATE"
                )
                if head is None:
                    raise StorageError("the audit chain head is missing")
                rows = await conn.fetch(
                    CHAINED_SQL + " WHERE chain_pos IS NULL AND seq > $1 ORDER BY seq LIMIT $2",
                    head["genesis_seq"],
                    batch,
                )
                if not rows:
                    return sealed
                pos, prev = int(head["pos"]), str(head["row_hash"])
                seqs, places, prevs, hashes = [], [], [], []
                for record in rows:
                    pos += 1
                    row = ChainedRow(*record)
                    digest = replace(row, chain_pos=pos, prev_hash=prev).expected_hash()
                    seqs.append(row.seq)
                    places.append(pos)
                    prevs.append(prev)
                    hashes.append(digest)
                    prev = digest
                await conn.execute(
                    "UPDATE qr_audit_log AS l SET chain_pos = v.pos, prev_hash = v.prev,"
                    " row_hash = v.hash FROM unnest($1::bigint[], $2::bigint[], $3::text[],"
                    " $4::text[]) AS v(seq, pos, prev, hash) WHERE l.seq = v.seq",
                    seqs,
                    places,
                    prevs,
                    hashes,
                )
                await conn.execute(
                    "UPDATE audit_chain_head SET pos = $1, row_hash = $2 WHERE id = 1", pos, prev
                )
                sealed += len(rows)


class _PostgresAdminTx:
    """:class:`central.storage.admin.AdminTx` on one pooled transaction."""

    def __init__(self, tx: PostgresTx) -> None:
        self.tx: Tx = tx
        self._conn = tx.conn

    async def fetch(self, sql: str, args: tuple[Any, ...], *, lock: bool = False) -> list[Any]:
        # Row locks, so two admins editing one item apply their edits one after the other.
        statement = numbered(sql) + (" FOR UPDATE" if lock else "")
        return [tuple(r) for r in await self._conn.fetch(statement, *args)]

    async def run(self, sql: str, args: tuple[Any, ...]) -> int:
        try:
            return _count(await self._conn.execute(numbered(sql), *args))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise StorageError(f"the database refused the change: {exc}") from exc
