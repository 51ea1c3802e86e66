"""Paged, searchable reads of the library for staff: items with who has them, members, loans.

Sized for 10,000 items and 10,000 members: every read is one page (``LIMIT``/``OFFSET``
on an indexed order) and a count, never the whole table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from central.web.credentials import SqlHooks

PAGE_SIZE = 50


# An item with its open loan, if any; callers add the WHERE.
_ITEM_LINE = (
    "SELECT i.item_id, i.name, i.shelf_id, i.state, i.label_version, c.member_id,"
    " c.due_at FROM items i LEFT JOIN checkouts c ON c.item_id = i.item_id"
    " AND c.returned_at IS NULL"
)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of rows and how many rows match in all."""

    rows: list[Any]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        """How many pages the matches fill (at least one)."""
        return max(1, -(-self.total // self.size))


@dataclass(frozen=True, slots=True)
class ItemLine:
    """An item, where it stands, and who has it until when."""

    item_id: str
    name: str
    shelf_id: str
    state: str  # available | checked_out | maintenance | retired
    label_version: int
    member_id: str | None
    due_at: datetime | None


@dataclass(frozen=True, slots=True)
class MemberLine:
    """A member with their limit, suspension and how many items they have out."""

    member_id: str
    name: str
    suspended: bool
    checkout_limit: int
    on_loan: int


@dataclass(frozen=True, slots=True)
class LoanLine:
    """An open loan."""

    item_id: str
    item_name: str
    member_id: str
    member_name: str
    kiosk_id: str
    checked_out_at: datetime
    due_at: datetime


@dataclass(frozen=True, slots=True)
class AlertLine:
    """A security alert from the audit log."""

    at: datetime
    reason: str | None
    kiosk_id: str | None
    detail: dict[str, Any]


def _like(query: str) -> str:
    # LIKE's own wildcards in a search are taken literally.
    escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Browse:
    """The staff console's paged reads, on either backend through the stores' hooks."""

    def __init__(self, store: SqlHooks) -> None:
        self._s = store

    def _at(self, value: Any) -> datetime:
        moment = self._s._moment(value)
        assert moment is not None
        return moment

    async def _count(self, sql: str, args: tuple[Any, ...]) -> int:
        row = await self._s._read_one(sql, args)
        return 0 if row is None else int(row[0])

    async def items(self, query: str = "", shelf_id: str = "", page: int = 1) -> Page:
        """Items whose id or name holds ``query``, on ``shelf_id`` (any if empty), by id."""
        where = (
            " WHERE (lower(i.name) LIKE ? ESCAPE '\\' OR lower(i.item_id) LIKE ? ESCAPE '\\')"
            " AND (? = '' OR i.shelf_id = ?)"
        )
        args = (_like(query), _like(query), shelf_id, shelf_id)
        total = await self._count(f"SELECT count(*) FROM items i{where}", args)  # noqa: S608 - constant SQL
        page = max(1, page)
        rows = await self._s._read_all(
            f"{_ITEM_LINE}{where} ORDER BY i.item_id LIMIT ? OFFSET ?",
            (*args, PAGE_SIZE, (page - 1) * PAGE_SIZE),
        )
        return Page([self._item_line(r) for r in rows], total, page, PAGE_SIZE)

    async def item(self, item_id: str) -> ItemLine | None:
        """One item's line, as the library page shows it (None if there is no such item).

        The console's live library page asks for it when an item goes out: availability
        messages say that it went, not to whom.
        """
        rows = await self._s._read_all(f"{_ITEM_LINE} WHERE i.item_id = ?", (item_id,))
        return self._item_line(rows[0]) if rows else None

    def _item_line(self, r: Sequence[Any]) -> ItemLine:
        return ItemLine(
            str(r[0]),
            str(r[1]),
            str(r[2]),
            "checked_out" if r[5] is not None else str(r[3]),
            int(r[4]),
            None if r[5] is None else str(r[5]),
            self._s._moment(r[6]),
        )

    async def members(self, query: str = "", page: int = 1) -> Page:
        """Members whose number or name holds ``query``, by number."""
        where = " WHERE (lower(m.name) LIKE ? ESCAPE '\\' OR lower(m.member_id) LIKE ? ESCAPE '\\')"
        args = (_like(query), _like(query))
        total = await self._count(f"SELECT count(*) FROM members m{where}", args)  # noqa: S608 - constant SQL
        page = max(1, page)
        rows = await self._s._read_all(
            "SELECT m.member_id, m.name, m.suspended, m.checkout_limit,"  # noqa: S608 - constant SQL
            " (SELECT count(*) FROM checkouts c WHERE c.member_id = m.member_id"
            f" AND c.returned_at IS NULL) FROM members m{where}"
            " ORDER BY m.member_id LIMIT ? OFFSET ?",
            (*args, PAGE_SIZE, (page - 1) * PAGE_SIZE),
        )
        lines = [MemberLine(str(r[0]), str(r[1]), bool(r[2]), int(r[3]), int(r[4])) for r in rows]
        return Page(lines, total, page, PAGE_SIZE)

    async def loans(self, query: str = "", page: int = 1) -> Page:
        """Open loans whose item or member holds ``query``, soonest due first."""
        where = (
            " WHERE c.returned_at IS NULL AND (lower(i.name) LIKE ? ESCAPE '\\'"
            " OR lower(c.item_id) LIKE ? ESCAPE '\\' OR lower(m.name) LIKE ? ESCAPE '\\'"
            " OR lower(c.member_id) LIKE ? ESCAPE '\\')"
        )
        joins = (
            " FROM checkouts c JOIN items i ON i.item_id = c.item_id"
            " JOIN members m ON m.member_id = c.member_id"
        )
        args = (_like(query),) * 4
        total = await self._count(f"SELECT count(*){joins}{where}", args)
        page = max(1, page)
        rows = await self._s._read_all(
            "SELECT c.item_id, i.name, c.member_id, m.name, c.kiosk_id, c.checked_out_at,"
            f" c.due_at{joins}{where} ORDER BY c.due_at, c.item_id LIMIT ? OFFSET ?",
            (*args, PAGE_SIZE, (page - 1) * PAGE_SIZE),
        )
        lines = [
            LoanLine(
                str(r[0]),
                str(r[1]),
                str(r[2]),
                str(r[3]),
                str(r[4]),
                self._at(r[5]),
                self._at(r[6]),
            )
            for r in rows
        ]
        return Page(lines, total, page, PAGE_SIZE)

    async def alerts(self, limit: int = 50) -> list[AlertLine]:
        """The newest security alerts, newest first (indexed by action and time)."""
        rows = await self._s._read_all(
            "SELECT at, reason, kiosk_id, detail FROM qr_audit_log"
            " WHERE action = 'security.alert' ORDER BY at DESC, seq DESC LIMIT ?",
            (limit,),
        )
        return [
            AlertLine(
                self._at(r[0]),
                None if r[1] is None else str(r[1]),
                None if r[2] is None else str(r[2]),
                json.loads(r[3]) if isinstance(r[3], str) else dict(r[3] or {}),
            )
            for r in rows
        ]
