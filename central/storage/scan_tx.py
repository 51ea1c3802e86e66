"""The scan transaction's queries, written once over a :class:`Dialect`.

A backend supplies two primitives on its connection (``_one``: the first row or None;
``_exec``: the affected row count), its dialect, and how it appends to the audit log
(SQLite chains each row as it writes it; PostgreSQL appends and seals later) — those are
execution strategies, not queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from broker.messages import Availability, AvailabilityState, Verdict, encode
from central.errors import StorageError
from central.storage.base import (
    AuditEntry,
    CheckoutRow,
    ItemRow,
    KioskRow,
    MemberRow,
    PassUse,
    SessionRow,
)
from central.storage.circulation import HOLD_COLUMNS, RESERVATION_COLUMNS, CirculationQueries
from central.storage.dialect import Dialect
from central.storage.rollout import FLAG, FLAG_SQL, FlagRow, flag_from_row
from central.storage.rows import ClosedLoan, HoldRow, HoldState, ReservationRow, Standing, Terms

AVAILABILITY_SQL = (
    "SELECT i.item_id, i.shelf_id, i.name, i.state, i.availability_seq, c.due_at,"
    " EXISTS (SELECT 1 FROM holds h WHERE h.item_id = i.item_id AND h.state = 'ready')"
    " FROM items i LEFT JOIN checkouts c ON c.item_id = i.item_id AND c.returned_at IS NULL"
)
# The same row, read back by the UPDATE that bumps the item's sequence: one statement per
# changed item instead of two (both backends support RETURNING with a subquery).
_BUMP_SQL = (
    "UPDATE items SET availability_seq = availability_seq + 1 WHERE item_id = ?"
    " RETURNING item_id, shelf_id, name, state, availability_seq,"
    " (SELECT c.due_at FROM checkouts c WHERE c.item_id = items.item_id"
    " AND c.returned_at IS NULL),"
    " EXISTS (SELECT 1 FROM holds h WHERE h.item_id = items.item_id AND h.state = 'ready')"
)


def availability_of(row: Sequence[Any], now: datetime, dialect: Dialect) -> Availability:
    """An :data:`AVAILABILITY_SQL` row as the retained availability message."""
    item_id, shelf_id, name, state, seq, due_at, held = row
    shown = AvailabilityState(state)
    if due_at is not None:
        shown = AvailabilityState.CHECKED_OUT
    elif held and shown is AvailabilityState.AVAILABLE:
        shown = AvailabilityState.HELD
    return Availability(
        item_id=item_id,
        shelf_id=shelf_id,
        name=name,
        state=shown,
        due_at=dialect.opt_moment(due_at),
        seq=seq,
        changed_at=now,
    )


class ScanTx(CirculationQueries):
    """:class:`central.storage.base.Tx`, each query once; backends add the primitives."""

    dialect: Dialect
    _flag: FlagRow | None = None

    async def _one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The first row of ``sql`` (``?`` placeholders, values already bound), or None."""
        raise NotImplementedError

    async def _exec(self, sql: str, args: tuple[Any, ...]) -> int:
        """Run ``sql``; how many rows it changed."""
        raise NotImplementedError

    async def audit(self, entry: AuditEntry) -> None:
        """Append one audit row (the backend's strategy: chained now or sealed later)."""
        raise NotImplementedError

    async def find_verdict(self, kiosk_id: str, event_id: str) -> Verdict | None:
        if self.dialect.claim_event is not None:
            # Claim the event first: a redelivery racing on another instance waits here
            # and then reads this transaction's verdict instead of deciding it again.
            await self._exec(self.dialect.claim_event, (kiosk_id, event_id))
        row = await self._one(
            "SELECT verdict FROM scan_events WHERE kiosk_id = ? AND event_id = ?",
            (kiosk_id, event_id),
        )
        return None if row is None else Verdict.model_validate_json(row[0])

    async def save_verdict(
        self,
        verdict: Verdict,
        code_hash: str | None,
        scanned_at: datetime,
        payload: bytes | None = None,
    ) -> None:
        t = self.dialect.param
        await self._exec(
            "INSERT INTO scan_events (event_id, kiosk_id, code_hash, scanned_at, decided_at,"
            " reason, verdict) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                verdict.event_id,
                verdict.kiosk_id,
                code_hash,
                t(scanned_at),
                t(verdict.decided_at),
                verdict.reason.value,
                (payload or encode(verdict)).decode(),
            ),
        )

    async def kiosk(self, kiosk_id: str) -> KioskRow | None:
        # The kiosk row lock serialises every decision about one kiosk's session.
        row = await self._one(
            self.dialect.locking(
                "SELECT kiosk_id, shelf_id, retired, blocked_until, config_version,"
                " session_timeout_s, return_point FROM kiosks WHERE kiosk_id = ?"
            ),
            (kiosk_id,),
        )
        if row is None:
            return None
        blocked = self.dialect.opt_moment(row[3])
        return KioskRow(row[0], row[1], bool(row[2]), blocked, row[4], row[5], bool(row[6]))

    async def member(self, member_id: str) -> MemberRow | None:
        # Locked so two kiosks checking out for one member count against one limit.
        row = await self._one(
            self.dialect.locking(
                "SELECT member_id, name, suspended, checkout_limit FROM members WHERE member_id = ?"
            ),
            (member_id,),
        )
        return None if row is None else MemberRow(row[0], row[1], bool(row[2]), row[3])

    async def item(self, item_id: str) -> ItemRow | None:
        row = await self._one(
            self.dialect.locking(
                "SELECT item_id, shelf_id, name, label_version, state, loan_days FROM items"
                " WHERE item_id = ?"
            ),
            (item_id,),
        )
        return None if row is None else ItemRow(*row)

    async def open_session(self, kiosk_id: str, now: datetime) -> SessionRow | None:
        row = await self._one(
            "SELECT session_id, kiosk_id, member_id, expires_at FROM sessions"
            " WHERE kiosk_id = ? AND closed_at IS NULL AND expires_at > ?",
            (kiosk_id, self.dialect.param(now)),
        )
        if row is None:
            return None
        return SessionRow(row[0], row[1], row[2], self.dialect.moment(row[3]))

    async def close_sessions(self, kiosk_id: str, now: datetime) -> int:
        return await self._exec(
            "UPDATE sessions SET closed_at = ? WHERE kiosk_id = ? AND closed_at IS NULL",
            (self.dialect.param(now), kiosk_id),
        )

    async def consume_pass(
        self, pass_id: str, member_id: str, kiosk_id: str, now: datetime
    ) -> PassUse:
        # A conditional update: whoever flips consumed_at first wins (on PostgreSQL the
        # row lock makes a racing second consumer wait, re-check the WHERE clause after
        # the first commits, and update nothing); the unique sessions.pass_id backstops.
        at = self.dialect.param(now)
        changed = await self._exec(
            "UPDATE qr_codes SET consumed_at = ?, consumed_by = ? WHERE pass_id = ?"
            " AND member_id = ? AND consumed_at IS NULL AND invalidated_at IS NULL"
            " AND expires_at > ?",
            (at, kiosk_id, pass_id, member_id, at),
        )
        if changed == 1:
            return PassUse.CONSUMED
        row = await self._one(
            "SELECT consumed_at, invalidated_at FROM qr_codes WHERE pass_id = ? AND member_id = ?",
            (pass_id, member_id),
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
        t = self.dialect.param
        row = await self._one(
            "INSERT INTO sessions (kiosk_id, member_id, pass_id, opened_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING session_id",
            (kiosk_id, member_id, pass_id, t(now), t(expires_at)),
        )
        assert row is not None
        return SessionRow(int(row[0]), kiosk_id, member_id, expires_at)

    async def extend_session(self, session_id: int, expires_at: datetime) -> None:
        await self._exec(
            "UPDATE sessions SET expires_at = ? WHERE session_id = ?",
            (self.dialect.param(expires_at), session_id),
        )

    async def open_checkout(self, item_id: str) -> CheckoutRow | None:
        row = await self._one(
            "SELECT checkout_id, item_id, member_id, checked_out_at, due_at, renewals"
            " FROM checkouts WHERE item_id = ? AND returned_at IS NULL",
            (item_id,),
        )
        if row is None:
            return None
        m = self.dialect.moment
        return CheckoutRow(row[0], row[1], row[2], m(row[3]), m(row[4]), int(row[5]))

    async def open_checkout_count(self, member_id: str) -> int:
        row = await self._one(
            "SELECT count(*) FROM checkouts WHERE member_id = ? AND returned_at IS NULL",
            (member_id,),
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
        t = self.dialect.param
        await self._exec(
            "INSERT INTO checkouts (item_id, member_id, session_id, kiosk_id, event_id,"
            " checked_out_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (item_id, member_id, session_id, kiosk_id, event_id, t(now), t(due_at)),
        )

    async def close_checkout(
        self, checkout_id: int, returned_at: datetime, event_id: str, kiosk_id: str
    ) -> None:
        changed = await self._exec(
            "UPDATE checkouts SET returned_at = ?, return_event_id = ?, return_kiosk_id = ?"
            " WHERE checkout_id = ? AND returned_at IS NULL",
            (self.dialect.param(returned_at), event_id, kiosk_id, checkout_id),
        )
        if changed != 1:
            raise StorageError(f"checkout {checkout_id} was not open")

    async def availability(self, item_id: str, now: datetime, *, bump: bool) -> Availability:
        if bump:
            row = await self._one(_BUMP_SQL, (item_id,))
        else:
            row = await self._one(AVAILABILITY_SQL + " WHERE i.item_id = ?", (item_id,))
        if row is None:
            raise StorageError(f"item {item_id} vanished")
        return availability_of(row, now, self.dialect)

    async def rollout_flag(self) -> FlagRow:
        # Read once per transaction: SQLite's BEGIN IMMEDIATE keeps any change out until
        # it ends (and a batch of scans shares one transaction); a PostgreSQL scan decided
        # alone reads it once (a batch reads it with each round's facts, scan_batch.py).
        if self._flag is None:
            self._flag = flag_from_row(await self._one(FLAG_SQL, (FLAG,)), self.dialect.opt_moment)
        return self._flag

    async def bucket(self, key: str, now: datetime, full: float) -> tuple[float, datetime]:
        # Create-if-absent first, so two instances meeting a new key wait on each other
        # instead of both inserting; then lock the row for the rest of the transaction.
        # Callers take it right after the kiosk row, before any item or member row.
        await self._exec(
            "INSERT INTO rate_buckets (bucket_key, tokens, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (bucket_key) DO NOTHING",
            (key, full, self.dialect.param(now)),
        )
        row = await self._one(
            self.dialect.locking(
                "SELECT tokens, updated_at FROM rate_buckets WHERE bucket_key = ?"
            ),
            (key,),
        )
        assert row is not None
        return float(row[0]), self.dialect.moment(row[1])

    async def save_bucket(self, key: str, tokens: float, at: datetime) -> None:
        await self._exec(
            "UPDATE rate_buckets SET tokens = ?, updated_at = ? WHERE bucket_key = ?",
            (tokens, self.dialect.param(at), key),
        )

    async def recent_failures(self, kiosk_id: str, since: datetime, reasons: Sequence[str]) -> int:
        marks = ", ".join("?" for _ in reasons)
        row = await self._one(
            "SELECT count(*) FROM scan_events WHERE kiosk_id = ? AND decided_at > ?"  # noqa: S608 - placeholders only
            f" AND reason IN ({marks})",
            (kiosk_id, self.dialect.param(since), *reasons),
        )
        assert row is not None
        return int(row[0])

    async def set_blocked_until(self, kiosk_id: str, until: datetime | None) -> bool:
        changed = await self._exec(
            "UPDATE kiosks SET blocked_until = ? WHERE kiosk_id = ?",
            (self.dialect.opt_param(until), kiosk_id),
        )
        return changed == 1

    async def invalidate_passes(self, now: datetime) -> int:
        at = self.dialect.param(now)
        return await self._exec(
            "UPDATE qr_codes SET invalidated_at = ? WHERE consumed_at IS NULL"
            " AND invalidated_at IS NULL AND expires_at > ?",
            (at, at),
        )

    # --- circulation (central/circulation.py decides; these load and write) ---------------

    async def item_terms(self, item_id: str) -> Terms:
        row = await self._one(
            "SELECT i.category, COALESCE(c.loan_days, i.loan_days), c.max_renewals, c.max_out,"
            " c.needs_training, c.needs_agreement, c.inspection_required, c.buffer_hours,"
            " s.hold_hours, s.overdue_block_days, s.renew_grace_hours, s.reservation_min_hours"
            " FROM items i LEFT JOIN categories c ON c.name = i.category"
            " CROSS JOIN circulation_settings s WHERE i.item_id = ?",
            (item_id,),
        )
        if row is None:
            raise StorageError(f"item {item_id} vanished")
        return terms_of(row)

    async def item_holds(self, item_id: str) -> tuple[HoldRow, ...]:
        rows = await self._all(
            self.dialect.locking(
                f"SELECT {HOLD_COLUMNS} FROM holds"  # noqa: S608 - a constant column list
                " WHERE item_id = ? AND state IN ('waiting', 'ready') ORDER BY placed_at, id"
            ),
            (item_id,),
        )
        return tuple(self.hold_of(row) for row in rows)

    async def next_reservation(self, item_id: str, now: datetime) -> ReservationRow | None:
        row = await self._one(
            f"SELECT {RESERVATION_COLUMNS} FROM reservations"  # noqa: S608 - constant columns
            " WHERE item_id = ? AND state = 'booked' AND ends_at > ? ORDER BY starts_at LIMIT 1",
            (item_id, self.dialect.param(now)),
        )
        return None if row is None else self.reservation_of(row)

    async def standing(self, member_id: str, category: str | None, now: datetime) -> Standing:
        # One round trip: training for the category, the current agreement accepted, the
        # most overdue open loan, the category's loans out (a NULL category matches none).
        row = await self._one(
            "SELECT (SELECT count(*) FROM member_training WHERE member_id = ? AND category = ?),"
            " (SELECT count(*) FROM agreements a WHERE a.current AND NOT EXISTS"
            " (SELECT 1 FROM member_agreements m WHERE m.member_id = ? AND m.version = a.version)),"
            " (SELECT min(due_at) FROM checkouts WHERE member_id = ? AND returned_at IS NULL"
            " AND due_at < ?),"
            " (SELECT count(*) FROM checkouts c JOIN items i ON i.item_id = c.item_id"
            " WHERE c.member_id = ? AND c.returned_at IS NULL AND i.category = ?)",
            (
                member_id,
                category,
                member_id,
                member_id,
                self.dialect.param(now),
                member_id,
                category,
            ),
        )
        assert row is not None
        return Standing(
            trained=category is None or int(row[0]) > 0,
            agreed=int(row[1]) == 0,
            oldest_due=self.dialect.opt_moment(row[2]),
            out_in_category=int(row[3]),
        )

    async def closed_by(self, kiosk_id: str, return_event_id: str) -> ClosedLoan | None:
        row = await self._one(
            "SELECT checkout_id, item_id, member_id, returned_at FROM checkouts"
            " WHERE return_event_id = ? AND return_kiosk_id = ?",
            (return_event_id, kiosk_id),
        )
        if row is None:
            return None
        return ClosedLoan(int(row[0]), row[1], row[2], self.dialect.moment(row[3]))

    async def place_hold(self, item_id: str, member_id: str, via: str, now: datetime) -> int:
        row = await self._one(
            "INSERT INTO holds (item_id, member_id, placed_at, placed_via, state)"
            " VALUES (?, ?, ?, ?, 'waiting') RETURNING id",
            (item_id, member_id, self.dialect.param(now), via),
        )
        assert row is not None
        return int(row[0])

    async def move_hold(self, hold_id: int, to: HoldState, now: datetime) -> None:
        at = self.dialect.param(now)
        if to is HoldState.READY:
            # Only a waiting hold is allocated; the partial unique index keeps one ready
            # hold per item whatever the races.
            changed = await self._exec(
                "UPDATE holds SET state = 'ready', ready_at = ?, notified_at = NULL"
                " WHERE id = ? AND state = 'waiting'",
                (at, hold_id),
            )
        else:
            changed = await self._exec(
                "UPDATE holds SET state = ?, closed_at = ?"
                " WHERE id = ? AND state IN ('waiting', 'ready')",
                (to.value, at, hold_id),
            )
        if changed != 1:
            raise StorageError(f"hold {hold_id} was not open")

    async def renew_checkout(self, checkout_id: int, due_at: datetime) -> None:
        changed = await self._exec(
            "UPDATE checkouts SET due_at = ?, renewals = renewals + 1"
            " WHERE checkout_id = ? AND returned_at IS NULL",
            (self.dialect.param(due_at), checkout_id),
        )
        if changed != 1:
            raise StorageError(f"checkout {checkout_id} was not open")


def terms_of(row: Sequence[Any]) -> Terms:
    """An ``item_terms`` row as :class:`Terms` (a category's NULLs: the defaults)."""
    (category, loan_days, max_renewals, max_out, training, agreement, inspection, buffer) = row[:8]
    hold_hours, block_days, grace_hours, min_hours = row[8:12]
    return Terms(
        category=category,
        loan_days=int(loan_days),
        max_renewals=2 if max_renewals is None else int(max_renewals),
        max_out=None if max_out is None else int(max_out),
        needs_training=bool(training),
        needs_agreement=bool(agreement),
        inspection_required=bool(inspection),
        buffer_hours=0 if buffer is None else int(buffer),
        hold_hours=int(hold_hours),
        overdue_block_days=int(block_days),
        renew_grace_hours=int(grace_hours),
        reservation_min_hours=int(min_hours),
    )
