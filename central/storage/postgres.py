"""The PostgreSQL backend (asyncpg): several central instances share one database.

Each event is decided in its own short transaction that takes its locks in one fixed
order — the kiosk's event id (advisory lock), then the kiosk row, then the item row, then the
member row — so two instances never wait on each other in a cycle, and the constraints
(partial unique indexes, unique pass and event ids) refuse whatever a logic slip lets by.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from broker.messages import Availability, AvailabilityState, KioskConfig, Verdict, encode
from central.errors import MigrationError, StorageError
from central.storage import migrations
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
from central.storage.rollout import FLAG, FLAG_SQL, FlagRow, RolloutWrites, flag_from_row, numbered

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Any constant will do; it only keeps two instances from migrating at the same moment.
_MIGRATION_LOCK = 0x43533031
_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)


class PostgresTx:
    """One READ COMMITTED transaction whose row locks are taken as it reads."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @property
    def conn(self) -> asyncpg.Connection:
        """The connection this transaction runs on."""
        return self._conn

    async def find_verdict(self, kiosk_id: str, event_id: str) -> Verdict | None:
        # Claim the event first: a redelivery racing on another instance waits here and
        # then reads this transaction's verdict instead of deciding the event again. Event
        # ids are the kiosk's own, so the lock key is the pair ('/' is in neither id).
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))",
            kiosk_id,
            event_id,
        )
        text = await self._conn.fetchval(
            "SELECT verdict FROM scan_events WHERE kiosk_id = $1 AND event_id = $2",
            kiosk_id,
            event_id,
        )
        return None if text is None else Verdict.model_validate_json(text)

    async def save_verdict(
        self,
        verdict: Verdict,
        code_hash: str | None,
        scanned_at: datetime,
        payload: bytes | None = None,
    ) -> None:
        await self._conn.execute(
            "INSERT INTO scan_events (event_id, kiosk_id, code_hash, scanned_at, decided_at,"
            " reason, verdict) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            verdict.event_id,
            verdict.kiosk_id,
            code_hash,
            scanned_at,
            verdict.decided_at,
            verdict.reason.value,
            (payload or encode(verdict)).decode(),
        )

    async def kiosk(self, kiosk_id: str) -> KioskRow | None:
        # The kiosk row lock serialises every decision about one kiosk's session.
        row = await self._conn.fetchrow(
            "SELECT kiosk_id, shelf_id, retired, blocked_until, config_version,"
            " session_timeout_s, return_point FROM kiosks WHERE kiosk_id = $1 FOR UPDATE",
            kiosk_id,
        )
        return None if row is None else KioskRow(*row)

    async def member(self, member_id: str) -> MemberRow | None:
        # Locked so two kiosks checking out for one member count against one limit.
        row = await self._conn.fetchrow(
            "SELECT member_id, name, suspended, checkout_limit FROM members"
            " WHERE member_id = $1 FOR UPDATE",
            member_id,
        )
        return None if row is None else MemberRow(*row)

    async def item(self, item_id: str) -> ItemRow | None:
        row = await self._conn.fetchrow(
            "SELECT item_id, shelf_id, name, label_version, state, loan_days FROM items"
            " WHERE item_id = $1 FOR UPDATE",
            item_id,
        )
        return None if row is None else ItemRow(*row)

    async def open_session(self, kiosk_id: str, now: datetime) -> SessionRow | None:
        row = await self._conn.fetchrow(
            "SELECT session_id, kiosk_id, member_id, expires_at FROM sessions"
            " WHERE kiosk_id = $1 AND closed_at IS NULL AND expires_at > $2",
            kiosk_id,
            now,
        )
        return None if row is None else SessionRow(*row)

    async def close_sessions(self, kiosk_id: str, now: datetime) -> int:
        status = await self._conn.execute(
            "UPDATE sessions SET closed_at = $1 WHERE kiosk_id = $2 AND closed_at IS NULL",
            now,
            kiosk_id,
        )
        return _count(status)

    async def consume_pass(
        self, pass_id: str, member_id: str, kiosk_id: str, now: datetime
    ) -> PassUse:
        # A conditional update: the row lock it takes makes a racing second consumer wait,
        # re-check the WHERE clause after the first commits, and update nothing.
        status = await self._conn.execute(
            "UPDATE qr_codes SET consumed_at = $1, consumed_by = $2 WHERE pass_id = $3"
            " AND member_id = $4 AND consumed_at IS NULL AND invalidated_at IS NULL"
            " AND expires_at > $1",
            now,
            kiosk_id,
            pass_id,
            member_id,
        )
        if _count(status) == 1:
            return PassUse.CONSUMED
        row = await self._conn.fetchrow(
            "SELECT consumed_at, invalidated_at FROM qr_codes"
            " WHERE pass_id = $1 AND member_id = $2",
            pass_id,
            member_id,
        )
        if row is None:
            return PassUse.UNKNOWN
        if row["invalidated_at"] is not None:
            return PassUse.INVALIDATED
        if row["consumed_at"] is not None:
            return PassUse.ALREADY_USED
        return PassUse.EXPIRED

    async def start_session(
        self, kiosk_id: str, member_id: str, pass_id: str, now: datetime, expires_at: datetime
    ) -> SessionRow:
        session_id = await self._conn.fetchval(
            "INSERT INTO sessions (kiosk_id, member_id, pass_id, opened_at, expires_at)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING session_id",
            kiosk_id,
            member_id,
            pass_id,
            now,
            expires_at,
        )
        return SessionRow(session_id, kiosk_id, member_id, expires_at)

    async def extend_session(self, session_id: int, expires_at: datetime) -> None:
        await self._conn.execute(
            "UPDATE sessions SET expires_at = $1 WHERE session_id = $2", expires_at, session_id
        )

    async def open_checkout(self, item_id: str) -> CheckoutRow | None:
        row = await self._conn.fetchrow(
            "SELECT checkout_id, item_id, member_id, checked_out_at, due_at FROM checkouts"
            " WHERE item_id = $1 AND returned_at IS NULL",
            item_id,
        )
        return None if row is None else CheckoutRow(*row)

    async def open_checkout_count(self, member_id: str) -> int:
        count = await self._conn.fetchval(
            "SELECT count(*) FROM checkouts WHERE member_id = $1 AND returned_at IS NULL", member_id
        )
        return int(count)

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
        await self._conn.execute(
            "INSERT INTO checkouts (item_id, member_id, session_id, kiosk_id, event_id,"
            " checked_out_at, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            item_id,
            member_id,
            session_id,
            kiosk_id,
            event_id,
            now,
            due_at,
        )

    async def close_checkout(
        self, checkout_id: int, returned_at: datetime, event_id: str, kiosk_id: str
    ) -> None:
        status = await self._conn.execute(
            "UPDATE checkouts SET returned_at = $1, return_event_id = $2,"
            " return_kiosk_id = $3 WHERE checkout_id = $4 AND returned_at IS NULL",
            returned_at,
            event_id,
            kiosk_id,
            checkout_id,
        )
        if _count(status) != 1:
            raise StorageError(f"checkout {checkout_id} was not open")

    async def availability(self, item_id: str, now: datetime, *, bump: bool) -> Availability:
        if bump:
            await self._conn.execute(
                "UPDATE items SET availability_seq = availability_seq + 1 WHERE item_id = $1",
                item_id,
            )
        row = await self._conn.fetchrow(_AVAILABILITY_SQL + " WHERE i.item_id = $1", item_id)
        if row is None:
            raise StorageError(f"item {item_id} vanished")
        return _availability(row, now)

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
            json.dumps(entry.detail, sort_keys=True),
        )

    async def bucket(self, key: str, now: datetime, full: float) -> tuple[float, datetime]:
        # Create-if-absent first, so two instances meeting a new key wait on each other
        # instead of both inserting; then lock the row for the rest of the transaction.
        # Callers take it right after the kiosk row, before any item or member row.
        await self._conn.execute(
            "INSERT INTO rate_buckets (bucket_key, tokens, updated_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (bucket_key) DO NOTHING",
            key,
            full,
            now,
        )
        row = await self._conn.fetchrow(
            "SELECT tokens, updated_at FROM rate_buckets WHERE bucket_key = $1 FOR UPDATE", key
        )
        assert row is not None
        return float(row[0]), row[1]

    async def save_bucket(self, key: str, tokens: float, at: datetime) -> None:
        await self._conn.execute(
            "UPDATE rate_buckets SET tokens = $1, updated_at = $2 WHERE bucket_key = $3",
            tokens,
            at,
            key,
        )

    async def recent_failures(self, kiosk_id: str, since: datetime, reasons: Sequence[str]) -> int:
        count = await self._conn.fetchval(
            "SELECT count(*) FROM scan_events WHERE kiosk_id = $1 AND decided_at > $2"
            " AND reason = ANY($3::text[])",
            kiosk_id,
            since,
            list(reasons),
        )
        return int(count)

    async def set_blocked_until(self, kiosk_id: str, until: datetime | None) -> bool:
        status = await self._conn.execute(
            "UPDATE kiosks SET blocked_until = $1 WHERE kiosk_id = $2", until, kiosk_id
        )
        return _count(status) == 1

    async def invalidate_passes(self, now: datetime) -> int:
        status = await self._conn.execute(
            "UPDATE qr_codes SET invalidated_at = $1 WHERE consumed_at IS NULL"
            " AND invalidated_at IS NULL AND expires_at > $1",
            now,
        )
        return _count(status)

    async def rollout_flag(self) -> FlagRow:
        return flag_from_row(await self._conn.fetchrow(_FLAG_SQL, FLAG), _same)


_FLAG_SQL = numbered(FLAG_SQL)


def _same(value: Any) -> Any:
    return value


_CHAINED_SQL = (
    "SELECT seq, at, actor, action, reason, kiosk_id, member_id, item_id, event_id, detail,"
    " chain_pos, prev_hash, row_hash FROM qr_audit_log"
)
_AVAILABILITY_SQL = (
    "SELECT i.item_id, i.shelf_id, i.name, i.state, i.availability_seq, c.due_at"
    " FROM items i LEFT JOIN checkouts c ON c.item_id = i.item_id AND c.returned_at IS NULL"
)


def _availability(row: asyncpg.Record, now: datetime) -> Availability:
    state = (
        AvailabilityState.CHECKED_OUT
        if row["due_at"] is not None
        else AvailabilityState(row["state"])
    )
    return Availability(
        item_id=row["item_id"],
        shelf_id=row["shelf_id"],
        name=row["name"],
        state=state,
        due_at=row["due_at"],
        seq=row["availability_seq"],
        changed_at=now,
    )


def _count(status: str) -> int:
    """The row count in an asyncpg command status such as ``UPDATE 1``."""
    return int(status.rsplit(" ", 1)[-1])


def _numbered(sql: str) -> str:
    """``?`` placeholders as asyncpg's ``$1, $2, …``."""
    numbered = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _m: f"${next(numbered)}", sql)


class PostgresStore(AdminWrites, FleetWrites, RolloutWrites, ReleaseWrites):
    """Central's state in PostgreSQL, shared by every central instance."""

    backend = "postgres"
    # Per-event transactions: a transaction spanning a batch would hold one event's locks
    # while taking the next event's, and two instances could then deadlock.
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

    async def _admin_write(self, sql: str, args: tuple[Any, ...], entry: AuditEntry) -> None:
        statement = _numbered(sql)
        async with self.write() as tx:
            try:
                await tx.conn.execute(statement, *args)
            except asyncpg.IntegrityConstraintViolationError as exc:
                duplicate = isinstance(exc, asyncpg.UniqueViolationError)
                raise StorageError(refusal(entry, duplicate=duplicate)) from exc
            await tx.audit(entry)

    async def get_item(self, item_id: str) -> ItemRow | None:
        row = await self.pool.fetchrow(
            "SELECT item_id, shelf_id, name, label_version, state, loan_days FROM items"
            " WHERE item_id = $1",
            item_id,
        )
        return None if row is None else ItemRow(*row)

    async def get_member(self, member_id: str) -> MemberRow | None:
        row = await self.pool.fetchrow(
            "SELECT member_id, name, suspended, checkout_limit FROM members WHERE member_id = $1",
            member_id,
        )
        return None if row is None else MemberRow(*row)

    async def all_availability(self, now: datetime) -> Sequence[Availability]:
        rows = await self.pool.fetch(_AVAILABILITY_SQL + " ORDER BY i.item_id")
        return [_availability(row, now) for row in rows]

    async def kiosk_configs(self) -> Sequence[KioskConfig]:
        rows = await self.pool.fetch(
            "SELECT kiosk_id, shelf_id, config_version, session_timeout_s, device_config"
            " FROM kiosks WHERE NOT retired ORDER BY kiosk_id"
        )
        return [config_from_row(r) for r in rows]

    async def audit_tail(self, limit: int) -> Sequence[AuditEntry]:
        rows = await self.pool.fetch(
            "SELECT at, actor, action, reason, kiosk_id, member_id, item_id, event_id, detail"
            " FROM (SELECT * FROM qr_audit_log ORDER BY seq DESC LIMIT $1) t ORDER BY seq",
            limit,
        )
        return [
            AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]))
            for r in rows
        ]

    @asynccontextmanager
    async def _admin_tx(self) -> AsyncIterator[_PostgresAdminTx]:
        async with self.write() as tx:
            yield _PostgresAdminTx(tx)

    async def _admin_read(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        return [tuple(r) for r in await self.pool.fetch(_numbered(sql), *args)]

    async def _admin_chunk(self, work: Callable[[AdminTx], Awaitable[_T]]) -> _T:
        async with self._admin_tx() as atx:
            return await work(atx)

    # -- the hooks central/storage/rollout.py writes its SQL through --------------------------

    def _rollout_tx(self) -> AbstractAsyncContextManager[Tx]:
        return self.write()

    async def _tx_one(self, tx: Tx, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        assert isinstance(tx, PostgresTx)
        row = await tx.conn.fetchrow(_numbered(sql), *args)
        return None if row is None else tuple(row)

    async def _tx_exec(self, tx: Tx, sql: str, args: tuple[Any, ...]) -> int:
        assert isinstance(tx, PostgresTx)
        return _count(await tx.conn.execute(_numbered(sql), *args))

    async def _read_one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row = await self.pool.fetchrow(_numbered(sql), *args)
        return None if row is None else tuple(row)

    async def _read_all(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self.pool.fetch(_numbered(sql), *args)]

    def _moment(self, value: Any) -> datetime | None:
        return value  # type: ignore[no-any-return]  # asyncpg hands back aware datetimes

    async def kiosk_records(self) -> Sequence[KioskRecord]:
        rows = await self.pool.fetch(
            "SELECT kiosk_id, shelf_id, config_version, session_timeout_s, device_config"
            ", retired, blocked_until, return_point FROM kiosks ORDER BY kiosk_id"
        )
        return [KioskRecord(config_from_row(r), r[5], r[6], r[7]) for r in rows]

    async def audit_head(self) -> ChainHead:
        row = await self.pool.fetchrow(
            "SELECT genesis_seq, pos, row_hash, (SELECT count(*) FROM qr_audit_log"
            " WHERE chain_pos IS NULL AND seq > genesis_seq) FROM audit_chain_head WHERE id = 1"
        )
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
        rows = await self.pool.fetch(
            _CHAINED_SQL + " WHERE seq > $1"
            " AND ($2::timestamptz IS NULL OR at >= $2)"
            " AND ($3::timestamptz IS NULL OR at < $3) ORDER BY seq LIMIT $4",
            after_seq,
            since,
            until,
            limit,
        )
        return [ChainedRow(*r) for r in rows]

    async def audit_chain_rows(self, after_pos: int, limit: int) -> Sequence[ChainedRow]:
        rows = await self.pool.fetch(
            _CHAINED_SQL + " WHERE chain_pos > $1 ORDER BY chain_pos LIMIT $2", after_pos, limit
        )
        return [ChainedRow(*r) for r in rows]

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
                    _CHAINED_SQL + " WHERE chain_pos IS NULL AND seq > $1 ORDER BY seq LIMIT $2",
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

    async def overdue_loans(self, now: datetime) -> Sequence[OverdueLoan]:
        rows = await self.pool.fetch(
            "SELECT c.member_id, m.name, c.item_id, i.name, c.checked_out_at, c.due_at"
            " FROM checkouts c JOIN members m ON m.member_id = c.member_id"
            " JOIN items i ON i.item_id = c.item_id"
            " WHERE c.returned_at IS NULL AND c.due_at < $1 ORDER BY c.due_at, c.item_id",
            now,
        )
        return [OverdueLoan(*r) for r in rows]


class _PostgresAdminTx:
    """:class:`central.storage.admin.AdminTx` on one pooled transaction."""

    def __init__(self, tx: PostgresTx) -> None:
        self.tx: Tx = tx
        self._conn = tx.conn

    async def fetch(self, sql: str, args: tuple[Any, ...], *, lock: bool = False) -> list[Any]:
        # Row locks, so two admins editing one item apply their edits one after the other.
        statement = _numbered(sql) + (" FOR UPDATE" if lock else "")
        return [tuple(r) for r in await self._conn.fetch(statement, *args)]

    async def run(self, sql: str, args: tuple[Any, ...]) -> int:
        try:
            return _count(await self._conn.execute(_numbered(sql), *args))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise StorageError(f"the database refused the change: {exc}") from exc
