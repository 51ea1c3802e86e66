"""Circulation's admin queries (categories, training, agreements, holds, bookings, tickets).

Written once over a :class:`central.storage.dialect.Dialect`, as the scan queries are;
:class:`central.storage.scan_tx.ScanTx` inherits them, so one transaction can lock an
item, its waitlist and its loan in the ledger's order and write them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from central.storage.dialect import Dialect
from central.storage.rows import HoldRow, HoldState, ReservationRow

HOLD_COLUMNS = "id, item_id, member_id, placed_at, state, ready_at, notified_at"
RESERVATION_COLUMNS = "id, item_id, member_id, starts_at, ends_at"
CATEGORY_COLUMNS = (
    "name, loan_days, max_renewals, max_out, needs_training, needs_agreement,"
    " inspection_required, buffer_hours"
)
SETTINGS_COLUMNS = "hold_hours, overdue_block_days, renew_grace_hours, reservation_min_hours"


@dataclass(frozen=True, slots=True)
class CategoryRow:
    """One category's loan policy (None: the item's own loan period)."""

    name: str
    loan_days: int | None
    max_renewals: int
    max_out: int | None
    needs_training: bool
    needs_agreement: bool
    inspection_required: bool
    buffer_hours: int


@dataclass(frozen=True, slots=True)
class TicketRow:
    """A repair ticket."""

    ticket_id: int
    item_id: str
    kiosk_id: str | None
    member_id: str | None
    checkout_id: int | None
    opened_at: datetime
    note: str
    closed_at: datetime | None
    closed_by: str | None


class CirculationQueries:
    """The circulation queries; a backend's transaction supplies the primitives."""

    dialect: Dialect

    async def _one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        raise NotImplementedError

    async def _exec(self, sql: str, args: tuple[Any, ...]) -> int:
        raise NotImplementedError

    async def _all(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def hold_of(self, row: Sequence[Any]) -> HoldRow:
        """A row of :data:`HOLD_COLUMNS` as a :class:`HoldRow`."""
        m, o = self.dialect.moment, self.dialect.opt_moment
        return HoldRow(
            int(row[0]), row[1], row[2], m(row[3]), HoldState(row[4]), o(row[5]), o(row[6])
        )

    def reservation_of(self, row: Sequence[Any]) -> ReservationRow:
        """A row of :data:`RESERVATION_COLUMNS` as a :class:`ReservationRow`."""
        m = self.dialect.moment
        return ReservationRow(int(row[0]), row[1], row[2], m(row[3]), m(row[4]))

    # --- policies ------------------------------------------------------------------------

    async def put_category(self, row: CategoryRow) -> None:
        """Create or replace a category's policy."""
        await self._exec(
            f"INSERT INTO categories ({CATEGORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 - constant columns
            " ON CONFLICT (name) DO UPDATE SET loan_days = excluded.loan_days,"
            " max_renewals = excluded.max_renewals, max_out = excluded.max_out,"
            " needs_training = excluded.needs_training,"
            " needs_agreement = excluded.needs_agreement,"
            " inspection_required = excluded.inspection_required,"
            " buffer_hours = excluded.buffer_hours",
            (
                row.name,
                row.loan_days,
                row.max_renewals,
                row.max_out,
                row.needs_training,
                row.needs_agreement,
                row.inspection_required,
                row.buffer_hours,
            ),
        )

    async def categories(self) -> list[CategoryRow]:
        """Every category, by name."""
        rows = await self._all(f"SELECT {CATEGORY_COLUMNS} FROM categories ORDER BY name", ())  # noqa: S608 - constant columns
        return [
            CategoryRow(r[0], r[1], int(r[2]), r[3], bool(r[4]), bool(r[5]), bool(r[6]), int(r[7]))
            for r in rows
        ]

    async def set_item_category(self, item_id: str, category: str | None) -> bool:
        """File an item under a category (None: the default policy); whether it exists."""
        return (
            await self._exec("UPDATE items SET category = ? WHERE item_id = ?", (category, item_id))
            == 1
        )

    async def settings_row(self) -> tuple[int, int, int, int]:
        """The library's circulation settings."""
        row = await self._one(
            f"SELECT {SETTINGS_COLUMNS} FROM circulation_settings WHERE settings_id = 1",  # noqa: S608 - constant columns
            (),
        )
        assert row is not None
        return (int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    async def put_settings(self, values: tuple[int, int, int, int]) -> None:
        """Replace the library's circulation settings."""
        await self._exec(
            "UPDATE circulation_settings SET hold_hours = ?, overdue_block_days = ?,"
            " renew_grace_hours = ?, reservation_min_hours = ? WHERE settings_id = 1",
            values,
        )

    async def record_training(
        self, member_id: str, category: str, actor: str, now: datetime
    ) -> None:
        """Note that a member is trained for a category (again is harmless)."""
        await self._exec(
            "INSERT INTO member_training (member_id, category, recorded_by, at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (member_id, category) DO NOTHING",
            (member_id, category, actor, self.dialect.param(now)),
        )

    async def publish_agreement(self, text: str, now: datetime) -> int:
        """Make ``text`` the current lending agreement; its version."""
        await self._exec("UPDATE agreements SET current = FALSE WHERE current", ())
        row = await self._one(
            "INSERT INTO agreements (version, text, current, created_at)"
            " SELECT coalesce(max(version), 0) + 1, ?, TRUE, ? FROM agreements"
            " RETURNING version",
            (text, self.dialect.param(now)),
        )
        assert row is not None
        return int(row[0])

    async def accept_agreement(self, member_id: str, now: datetime) -> int | None:
        """Record that a member accepted the current agreement; its version (None: none)."""
        row = await self._one("SELECT version FROM agreements WHERE current", ())
        if row is None:
            return None
        await self._exec(
            "INSERT INTO member_agreements (member_id, version, accepted_at) VALUES (?, ?, ?)"
            " ON CONFLICT (member_id, version) DO NOTHING",
            (member_id, row[0], self.dialect.param(now)),
        )
        return int(row[0])

    # --- holds ---------------------------------------------------------------------------

    async def hold_item(self, hold_id: int) -> str | None:
        """Which item a hold is on (read before the item is locked)."""
        row = await self._one("SELECT item_id FROM holds WHERE id = ?", (hold_id,))
        return None if row is None else str(row[0])

    async def list_holds(
        self, *, item_id: str | None = None, member_id: str | None = None, open_only: bool = True
    ) -> list[tuple[HoldRow, str]]:
        """Holds with how each was placed, in queue order per item."""
        where, args = ["1 = 1"], []
        if item_id is not None:
            where.append("item_id = ?")
            args.append(item_id)
        if member_id is not None:
            where.append("member_id = ?")
            args.append(member_id)
        if open_only:
            where.append("state IN ('waiting', 'ready')")
        rows = await self._all(
            f"SELECT {HOLD_COLUMNS}, placed_via FROM holds WHERE {' AND '.join(where)}"  # noqa: S608 - fixed fragments
            " ORDER BY item_id, placed_at, id",
            tuple(args),
        )
        return [(self.hold_of(r), str(r[7])) for r in rows]

    async def items_with_open_holds(self) -> list[str]:
        """Items someone waits for or whose hold is ready (what the sweep looks at)."""
        rows = await self._all(
            "SELECT DISTINCT item_id FROM holds WHERE state IN ('waiting', 'ready')"
            " ORDER BY item_id",
            (),
        )
        return [str(r[0]) for r in rows]

    async def mark_notified(self, hold_id: int, now: datetime) -> bool:
        """The member was told their hold is ready (the reminders call this)."""
        changed = await self._exec(
            "UPDATE holds SET notified_at = ? WHERE id = ? AND state = 'ready'"
            " AND notified_at IS NULL",
            (self.dialect.param(now), hold_id),
        )
        return changed == 1

    # --- reservations ----------------------------------------------------------------------

    async def clashing_reservations(
        self, item_id: str, starts_at: datetime, ends_at: datetime
    ) -> int:
        """How many bookings of the item come into ``[starts_at, ends_at)``."""
        row = await self._one(
            "SELECT count(*) FROM reservations WHERE item_id = ? AND state = 'booked'"
            " AND starts_at < ? AND ends_at > ?",
            (item_id, self.dialect.param(ends_at), self.dialect.param(starts_at)),
        )
        assert row is not None
        return int(row[0])

    async def add_reservation(
        self, item_id: str, member_id: str, starts_at: datetime, ends_at: datetime, now: datetime
    ) -> int:
        """Book an item (the caller has checked clashes under the item's lock)."""
        t = self.dialect.param
        row = await self._one(
            "INSERT INTO reservations (item_id, member_id, starts_at, ends_at, created_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (item_id, member_id, t(starts_at), t(ends_at), t(now)),
        )
        assert row is not None
        return int(row[0])

    async def cancel_reservation(self, reservation_id: int) -> bool:
        """Cancel a booking; whether it was booked."""
        changed = await self._exec(
            "UPDATE reservations SET state = 'cancelled' WHERE id = ? AND state = 'booked'",
            (reservation_id,),
        )
        return changed == 1

    async def list_reservations(self, item_id: str | None, now: datetime) -> list[ReservationRow]:
        """Bookings not yet over, soonest first."""
        args: tuple[Any, ...] = (self.dialect.param(now),)
        where = "state = 'booked' AND ends_at > ?"
        if item_id is not None:
            where += " AND item_id = ?"
            args = (*args, item_id)
        rows = await self._all(
            f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE {where}"  # noqa: S608 - fixed fragments
            " ORDER BY starts_at, id",
            args,
        )
        return [self.reservation_of(r) for r in rows]

    # --- repair tickets --------------------------------------------------------------------

    async def open_ticket(
        self,
        item_id: str,
        now: datetime,
        *,
        kiosk_id: str | None = None,
        member_id: str | None = None,
        checkout_id: int | None = None,
        event_id: str | None = None,
        note: str = "",
    ) -> int:
        """Open a repair ticket (one per reporting event)."""
        row = await self._one(
            "INSERT INTO repair_tickets (item_id, kiosk_id, member_id, checkout_id, event_id,"
            " opened_at, note) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (item_id, kiosk_id, member_id, checkout_id, event_id, self.dialect.param(now), note),
        )
        assert row is not None
        return int(row[0])

    async def ticket_for_event(self, event_id: str) -> int | None:
        """The ticket a report event already opened, if any."""
        row = await self._one("SELECT id FROM repair_tickets WHERE event_id = ?", (event_id,))
        return None if row is None else int(row[0])

    async def list_tickets(self, *, open_only: bool) -> list[TicketRow]:
        """Repair tickets, newest first."""
        sql = (
            "SELECT id, item_id, kiosk_id, member_id, checkout_id, opened_at, note, closed_at,"
            " closed_by FROM repair_tickets"
        )
        if open_only:
            sql += " WHERE closed_at IS NULL"
        rows = await self._all(sql + " ORDER BY id DESC", ())
        m, o = self.dialect.moment, self.dialect.opt_moment
        return [
            TicketRow(int(r[0]), r[1], r[2], r[3], r[4], m(r[5]), r[6], o(r[7]), r[8]) for r in rows
        ]

    async def close_ticket(self, ticket_id: int, actor: str, now: datetime) -> str | None:
        """Close an open ticket; the item it was about (None: no such open ticket)."""
        row = await self._one(
            "UPDATE repair_tickets SET closed_at = ?, closed_by = ? WHERE id = ?"
            " AND closed_at IS NULL RETURNING item_id",
            (self.dialect.param(now), actor, ticket_id),
        )
        return None if row is None else str(row[0])

    async def set_state(self, item_id: str, state: str) -> None:
        """Put an item in a state (available, maintenance); the caller republishes it."""
        await self._exec("UPDATE items SET state = ? WHERE item_id = ?", (state, item_id))
