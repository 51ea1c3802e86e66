"""The members' app's rows (e-mails, tickets, passkeys, sessions, phones), SQL for both backends.

Written once with ``?`` placeholders through the hooks every store already offers its
rollout SQL (see :class:`central.storage.rollout.RolloutWrites`), so the backends need no
change for the members' app.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from central.storage.base import Tx
from central.tokens import DevicePass
from central.web.credentials import Credentials, SqlHooks, Tables

MEMBER_TABLES = Tables("web_tickets", "passkeys", "web_sessions", "member_id")


@dataclass(frozen=True, slots=True)
class Device:
    """A phone that shows rotating passes."""

    device_id: str
    label: str
    created_at: datetime
    revoked: bool


@dataclass(frozen=True, slots=True)
class Loan:
    """One checkout of the member's, open or returned."""

    item_id: str
    item_name: str
    checked_out_at: datetime
    due_at: datetime
    returned_at: datetime | None


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    """An item as the catalogue shows it."""

    item_id: str
    name: str
    shelf_id: str
    shelf_name: str
    state: str  # available | checked_out | maintenance
    due_at: datetime | None


# A rotating pass becomes a qr_codes row the first time it is decided; a revoked phone's
# row is born invalidated (REVOKED), an unknown phone gets none (UNKNOWN_CODE). The primary
# key makes the same displayed code one pass however many kiosks read it.
_MATERIALISE = (
    "INSERT INTO qr_codes (pass_id, member_id, issued_at, expires_at, invalidated_at)"
    " SELECT ?, member_id, ?, ?, revoked_at"
    " FROM member_devices WHERE device_id = ? AND member_id = ?"
    " ON CONFLICT (pass_id) DO NOTHING"
)


class MembersData(Credentials):
    """Reads and writes the members' app rows through a store's hooks."""

    def __init__(self, store: SqlHooks) -> None:
        super().__init__(store, MEMBER_TABLES)

    async def materialise(self, tx: Tx, token: DevicePass, now: datetime) -> None:
        """Write the single-use row for a device pass, inside the scan's transaction."""
        args = (token.pass_id, now, token.expires_at, token.device_id, token.member_id)
        await self._s._tx_exec(tx, _MATERIALISE, args)

    # -- e-mail and tickets --------------------------------------------------------------

    async def set_email(self, member_id: str, email: str) -> None:
        """Record (or change) the address a member's sign-in links go to."""
        async with self._s._rollout_tx() as tx:
            await self._s._tx_exec(tx, "DELETE FROM member_emails WHERE email = ?", (email,))
            await self._s._tx_exec(
                tx,
                "INSERT INTO member_emails (member_id, email) VALUES (?, ?)"
                " ON CONFLICT (member_id) DO UPDATE SET email = excluded.email",
                (member_id, email),
            )

    async def member_by_email(self, email: str) -> str | None:
        """The member signing in with ``email``, if any."""
        row = await self._s._read_one(
            "SELECT member_id FROM member_emails WHERE email = ?", (email,)
        )
        return None if row is None else str(row[0])

    # -- phones --------------------------------------------------------------------------

    async def add_device(self, device_id: str, member_id: str, label: str, now: datetime) -> None:
        """A phone that will show rotating passes for ``member_id``."""
        async with self._s._rollout_tx() as tx:
            await self._s._tx_exec(
                tx,
                "INSERT INTO member_devices (device_id, member_id, label, created_at)"
                " VALUES (?, ?, ?, ?)",
                (device_id, member_id, label, now),
            )

    async def revoke_device(self, device_id: str, member_id: str | None, now: datetime) -> bool:
        """Stop a phone's passes (its member's only, unless staff: ``member_id`` None)."""
        sql = "UPDATE member_devices SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL"
        args: tuple[Any, ...] = (now, device_id)
        if member_id is not None:
            sql += " AND member_id = ?"
            args = (*args, member_id)
        async with self._s._rollout_tx() as tx:
            return await self._s._tx_exec(tx, sql, args) == 1

    async def devices(self, member_id: str) -> list[Device]:
        """A member's phones, newest first."""
        rows = await self._s._read_all(
            "SELECT device_id, label, created_at, revoked_at FROM member_devices"
            " WHERE member_id = ? ORDER BY created_at DESC",
            (member_id,),
        )
        return [Device(r[0], r[1], self._at(r[2]), r[3] is not None) for r in rows]

    # -- what members read ---------------------------------------------------------------

    async def loans(self, member_id: str, limit: int = 100) -> list[Loan]:
        """A member's checkouts, open ones first, then the history newest first."""
        rows = await self._s._read_all(
            "SELECT c.item_id, i.name, c.checked_out_at, c.due_at, c.returned_at"
            " FROM checkouts c JOIN items i ON i.item_id = c.item_id WHERE c.member_id = ?"
            " ORDER BY (c.returned_at IS NULL) DESC, c.checked_out_at DESC LIMIT ?",
            (member_id, limit),
        )
        return [
            Loan(r[0], r[1], self._at(r[2]), self._at(r[3]), self._s._moment(r[4])) for r in rows
        ]

    async def catalogue(self, query: str = "", shelf_id: str = "") -> list[CatalogueItem]:
        """Items members can see, filtered by a name fragment and a shelf."""
        rows = await self._s._read_all(
            "SELECT i.item_id, i.name, i.shelf_id, s.name, i.state, c.due_at,"
            " EXISTS (SELECT 1 FROM holds h WHERE h.item_id = i.item_id AND h.state = 'ready')"
            " FROM items i JOIN shelves s ON s.shelf_id = i.shelf_id"
            " LEFT JOIN checkouts c ON c.item_id = i.item_id AND c.returned_at IS NULL"
            " WHERE i.state <> 'retired' AND lower(i.name) LIKE ? AND (? = '' OR i.shelf_id = ?)"
            " ORDER BY i.name LIMIT 500",
            (f"%{query.lower()}%", shelf_id, shelf_id),
        )
        out = []
        for item_id, name, shelf, shelf_name, state, due, held in rows:
            shown = "checked_out" if due is not None else state
            if held and shown == "available":
                shown = "held"  # on the hold shelf for a member (docs/circulation.md)
            out.append(CatalogueItem(item_id, name, shelf, shelf_name, shown, self._s._moment(due)))
        return out

    async def shelves(self) -> list[tuple[str, str]]:
        """Every shelf as (id, name), for the catalogue's filter."""
        rows = await self._s._read_all("SELECT shelf_id, name FROM shelves ORDER BY name", ())
        return [(str(r[0]), str(r[1])) for r in rows]

    async def session_member(self, kiosk_id: str) -> str | None:
        """The member of the newest session at ``kiosk_id`` (open or just closed)."""
        row = await self._s._read_one(
            "SELECT member_id FROM sessions WHERE kiosk_id = ? ORDER BY session_id DESC LIMIT 1",
            (kiosk_id,),
        )
        return None if row is None else str(row[0])

    async def member_name(self, member_id: str) -> str | None:
        """A member's name, or None."""
        row = await self._s._read_one("SELECT name FROM members WHERE member_id = ?", (member_id,))
        return None if row is None else str(row[0])

    def _at(self, value: Any) -> datetime:
        moment = self._s._moment(value)
        assert moment is not None
        return moment
