"""The admin writes both backends share: one audited INSERT each, refused politely."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from central.storage.base import AuditEntry


class AdminWrites:
    """Mixin for a store: library data and passes, each write audited in its transaction.

    SQL is written once with ``?`` placeholders and datetimes as values; each backend's
    ``_admin_write`` adapts both and turns constraint refusals into admin-readable errors.
    """

    async def _admin_write(self, sql: str, args: tuple[Any, ...], entry: AuditEntry) -> None:
        raise NotImplementedError

    async def add_shelf(self, shelf_id: str, name: str, now: datetime, actor: str) -> None:
        await self._admin_write(
            "INSERT INTO shelves (shelf_id, name, created_at) VALUES (?, ?, ?)",
            (shelf_id, name, now),
            AuditEntry(now, actor, "shelf.add", detail={"shelf_id": shelf_id, "name": name}),
        )

    async def add_item(
        self, item_id: str, shelf_id: str, name: str, now: datetime, actor: str, loan_days: int = 14
    ) -> None:
        await self._admin_write(
            "INSERT INTO items (item_id, shelf_id, name, loan_days, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (item_id, shelf_id, name, loan_days, now),
            AuditEntry(
                now, actor, "item.add", item_id=item_id, detail={"shelf_id": shelf_id, "name": name}
            ),
        )

    async def add_member(
        self, member_id: str, name: str, now: datetime, actor: str, checkout_limit: int = 5
    ) -> None:
        await self._admin_write(
            "INSERT INTO members (member_id, name, checkout_limit, created_at) VALUES (?, ?, ?, ?)",
            (member_id, name, checkout_limit, now),
            AuditEntry(
                now,
                actor,
                "member.add",
                member_id=member_id,
                detail={"checkout_limit": checkout_limit},
            ),
        )

    async def add_kiosk(
        self,
        kiosk_id: str,
        shelf_id: str,
        now: datetime,
        actor: str,
        session_timeout_s: float = 60.0,
    ) -> None:
        await self._admin_write(
            "INSERT INTO kiosks (kiosk_id, shelf_id, session_timeout_s, created_at)"
            " VALUES (?, ?, ?, ?)",
            (kiosk_id, shelf_id, session_timeout_s, now),
            AuditEntry(now, actor, "kiosk.enrol", kiosk_id=kiosk_id, detail={"shelf_id": shelf_id}),
        )

    async def issue_pass(
        self, pass_id: str, member_id: str, now: datetime, expires_at: datetime, actor: str
    ) -> None:
        await self._admin_write(
            "INSERT INTO qr_codes (pass_id, member_id, issued_at, expires_at) VALUES (?, ?, ?, ?)",
            (pass_id, member_id, now, expires_at),
            AuditEntry(
                now,
                actor,
                "pass.issue",
                member_id=member_id,
                detail={"pass_id": pass_id, "expires_at": expires_at.isoformat()},
            ),
        )

    async def set_item_state(self, item_id: str, state: str, now: datetime, actor: str) -> None:
        await self._admin_write(
            "UPDATE items SET state = ?, availability_seq = availability_seq + 1 WHERE item_id = ?",
            (state, item_id),
            AuditEntry(now, actor, "item.state", item_id=item_id, detail={"state": state}),
        )
