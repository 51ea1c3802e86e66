"""The store's read-only queries (items, members, kiosks, availability, audit), written once.

Each backend supplies ``_read_one``/``_read_all`` (``?`` placeholders, times bound as
datetimes) and its :class:`~central.storage.dialect.Dialect` to read times back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from broker.messages import Availability, KioskConfig
from central.errors import StorageError
from central.storage.base import AuditEntry, ItemRow, MemberRow, OverdueLoan
from central.storage.chain import ChainedRow, ChainHead
from central.storage.dialect import Dialect
from central.storage.hooks import BackendHooks
from central.storage.kiosk_config import KioskRecord, config_from_row
from central.storage.scan_tx import AVAILABILITY_SQL, availability_of

CHAINED_SQL = (
    "SELECT seq, at, actor, action, reason, kiosk_id, member_id, item_id, event_id, detail,"
    " chain_pos, prev_hash, row_hash FROM qr_audit_log"
)
_KIOSK_SQL = (
    "SELECT kiosk_id, shelf_id, config_version, session_timeout_s, device_config"
    ", retired, blocked_until, return_point FROM kiosks"
)


class StoreReads(BackendHooks):
    """Read-only :class:`central.storage.base.Store` methods over a backend's read hooks."""

    dialect: Dialect

    def _chained(self, row: Sequence[Any]) -> ChainedRow:
        return ChainedRow(row[0], self.dialect.moment(row[1]), *row[2:])

    async def get_item(self, item_id: str) -> ItemRow | None:
        """An item, read-only."""
        row = await self._read_one(
            "SELECT item_id, shelf_id, name, label_version, state, loan_days FROM items"
            " WHERE item_id = ?",
            (item_id,),
        )
        return None if row is None else ItemRow(*row)

    async def get_member(self, member_id: str) -> MemberRow | None:
        """A member, read-only."""
        row = await self._read_one(
            "SELECT member_id, name, suspended, checkout_limit FROM members WHERE member_id = ?",
            (member_id,),
        )
        return None if row is None else MemberRow(row[0], row[1], bool(row[2]), row[3])

    async def all_availability(self, now: datetime) -> Sequence[Availability]:
        """Every item's availability, for the retained broadcast at start."""
        rows = await self._read_all(AVAILABILITY_SQL + " ORDER BY i.item_id", ())
        return [availability_of(row, now, self.dialect) for row in rows]

    async def kiosk_configs(self) -> Sequence[KioskConfig]:
        """Every active kiosk's configuration message."""
        rows = await self._read_all(_KIOSK_SQL + " WHERE NOT retired ORDER BY kiosk_id", ())
        return [config_from_row(r) for r in rows]

    async def kiosk_records(self) -> Sequence[KioskRecord]:
        """Every enrolled kiosk, retired ones included, by id."""
        rows = await self._read_all(_KIOSK_SQL + " ORDER BY kiosk_id", ())
        moment = self.dialect.opt_moment
        return [KioskRecord(config_from_row(r), bool(r[5]), moment(r[6]), bool(r[7])) for r in rows]

    async def audit_tail(self, limit: int) -> Sequence[AuditEntry]:
        """The newest audit rows, oldest first."""
        rows = await self._read_all(
            "SELECT at, actor, action, reason, kiosk_id, member_id, item_id, event_id, detail"
            " FROM (SELECT * FROM qr_audit_log ORDER BY seq DESC LIMIT ?) t ORDER BY seq",
            (limit,),
        )
        moment = self.dialect.moment
        return [
            AuditEntry(moment(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]))
            for r in rows
        ]

    async def audit_head(self) -> ChainHead:
        """Where the audit chain starts and ends now."""
        row = await self._read_one(
            "SELECT genesis_seq, pos, row_hash, (SELECT count(*) FROM qr_audit_log"
            " WHERE chain_pos IS NULL AND seq > genesis_seq) FROM audit_chain_head WHERE id = 1",
            (),
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
        """Audit rows with seq above ``after_seq`` (and ``since <= at < until``), by seq."""
        where, args = " WHERE seq > ?", list[object]([after_seq])
        if since is not None:
            where, args = where + " AND at >= ?", [*args, since]
        if until is not None:
            where, args = where + " AND at < ?", [*args, until]
        rows = await self._read_all(CHAINED_SQL + where + " ORDER BY seq LIMIT ?", (*args, limit))
        return [self._chained(r) for r in rows]

    async def audit_chain_rows(self, after_pos: int, limit: int) -> Sequence[ChainedRow]:
        """Chained audit rows with chain place above ``after_pos``, in chain order."""
        rows = await self._read_all(
            CHAINED_SQL + " WHERE chain_pos > ? ORDER BY chain_pos LIMIT ?", (after_pos, limit)
        )
        return [self._chained(r) for r in rows]

    async def overdue_loans(self, now: datetime) -> Sequence[OverdueLoan]:
        """Open checkouts whose due time has passed, most overdue first."""
        rows = await self._read_all(
            "SELECT c.member_id, m.name, c.item_id, i.name, c.checked_out_at, c.due_at"
            " FROM checkouts c JOIN members m ON m.member_id = c.member_id"
            " JOIN items i ON i.item_id = c.item_id"
            " WHERE c.returned_at IS NULL AND c.due_at < ? ORDER BY c.due_at, c.item_id",
            (now,),
        )
        moment = self.dialect.moment
        return [OverdueLoan(r[0], r[1], r[2], r[3], moment(r[4]), moment(r[5])) for r in rows]
