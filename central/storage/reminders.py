"""Reminder rows (settings, claims, delivery log, unsubscribes): SQL written once, both backends.

The claim is the guard against a second mail: the mail's claim and each line's are
inserted with ``ON CONFLICT DO NOTHING`` in one transaction that also re-reads that each
loan is still out (and each hold still waiting to be told), locking it; a claim another
central committed first leaves nothing to send, and the transaction is rolled back.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from central.reminders import (
    Kind,
    Line,
    Loan,
    ReadyHold,
    Reminder,
    ReminderSettings,
    lines_from_json,
    lines_json,
    parse_days,
    subject_of,
)
from central.storage.base import AuditEntry, Tx
from central.storage.circulation import CirculationQueries
from central.storage.dialect import Dialect
from central.storage.hooks import BackendHooks
from central.storage.rows import Terms
from central.storage.scan_tx import terms_of

_SETTINGS = (
    "SELECT enabled, digest_hour, timezone, due_soon_days, overdue_days, changed_by, changed_at"
    " FROM reminder_settings WHERE name = 'reminders'"
)
# The loan is locked while it is claimed, so a return waits for the claim (or the claim
# sees the return): never a mail queued for an item already back.
_STILL_OUT = "SELECT 1 FROM checkouts WHERE checkout_id = ? AND returned_at IS NULL"
_STILL_READY = "SELECT 1 FROM holds WHERE id = ? AND state = 'ready' AND notified_at IS NULL"
_CLAIM = (
    "INSERT INTO reminder_claims (claim, delivery_id, claimed_at) VALUES (?, ?, ?)"
    " ON CONFLICT (claim) DO NOTHING"
)
_DELIVERY = (
    "SELECT d.delivery_id, d.member_id, m.name, d.kind, d.step, d.email, d.lines, d.status,"
    " d.attempts, d.last_error, d.created_at, d.next_attempt_at, d.sent_at, s.token"
    " FROM reminder_deliveries d JOIN members m ON m.member_id = d.member_id"
    " LEFT JOIN reminder_subscriptions s ON s.member_id = d.member_id"
)


class _NothingToClaim(Exception):  # noqa: N818 - a signal that rolls one claim back, never escapes
    """Every line was claimed by another round, or came back: roll the claim back."""


@dataclass(frozen=True, slots=True)
class OpenLoan:
    """An open checkout and what the renewal rule (central/circulation.py) needs of it."""

    loan: Loan
    renewals: int
    terms: Terms
    others_waiting: bool


@dataclass(frozen=True, slots=True)
class StoredSettings:
    """The settings and who last changed them."""

    settings: ReminderSettings
    changed_by: str
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """One row of the delivery log."""

    delivery_id: int
    member_id: str
    member_name: str
    kind: Kind
    step: int | None
    email: str | None
    lines: tuple[Line, ...]
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    token: str | None  # the member's unsubscribe token


class ReminderRows:
    """Reads and writes the reminder tables through a store's hooks."""

    def __init__(self, store: BackendHooks, dialect: Dialect) -> None:
        self._s = store
        self._d = dialect

    # -- settings ------------------------------------------------------------------------

    async def settings(self) -> StoredSettings:
        """The settings every central sends by."""
        row = await self._s._read_one(_SETTINGS, ())
        assert row is not None, "reminder_settings has its one row from the migration"
        return self._settings(row)

    async def set_settings(
        self, settings: ReminderSettings, actor: str, now: datetime
    ) -> StoredSettings:
        """Change the settings, audited with the old and new values."""
        async with self._s._rollout_tx() as tx:
            before = await self._s._tx_one(tx, _SETTINGS, ())
            assert before is not None
            await self._s._tx_exec(
                tx,
                "UPDATE reminder_settings SET enabled = ?, digest_hour = ?, timezone = ?,"
                " due_soon_days = ?, overdue_days = ?, changed_by = ?, changed_at = ?"
                " WHERE name = 'reminders'",
                (
                    settings.enabled,
                    settings.digest_hour,
                    settings.timezone,
                    settings.due_soon_days,
                    ",".join(str(d) for d in settings.overdue_days),
                    actor,
                    now,
                ),
            )
            was = self._settings(before).settings
            await tx.audit(
                AuditEntry(
                    now,
                    actor,
                    "reminders.settings_set",
                    detail={"was": _settings_detail(was), "now": _settings_detail(settings)},
                )
            )
            after = await self._s._tx_one(tx, _SETTINGS, ())
        assert after is not None
        return self._settings(after)

    def _settings(self, row: Sequence[Any]) -> StoredSettings:
        enabled, hour, zone, soon, days, by, at = row
        moment = self._s._moment(at)
        assert moment is not None
        return StoredSettings(
            ReminderSettings(bool(enabled), int(hour), str(zone), int(soon), parse_days(days)),
            str(by),
            moment,
        )

    # -- facts ---------------------------------------------------------------------------

    async def open_loans(self, due_before: datetime) -> list[OpenLoan]:
        """Open checkouts due before ``due_before``, with what the renewal rule asks of them.

        The window keeps a round's work to the loans a mail could name (due soon or
        overdue), not every loan the library has out.
        """
        rows = await self._s._read_all(
            "SELECT c.checkout_id, c.member_id, c.item_id, i.name, c.due_at, c.renewals,"
            # The same terms, in the same order, as ScanTx.item_terms (read by terms_of).
            " i.category, COALESCE(k.loan_days, i.loan_days), k.max_renewals, k.max_out,"
            " k.needs_training, k.needs_agreement, k.inspection_required, k.buffer_hours,"
            " s.hold_hours, s.overdue_block_days, s.renew_grace_hours, s.reservation_min_hours,"
            # As the walk-up's renewal asks: does anyone else hold the item?
            " EXISTS (SELECT 1 FROM holds h WHERE h.item_id = c.item_id"
            " AND h.state IN ('waiting', 'ready') AND h.member_id <> c.member_id)"
            " FROM checkouts c JOIN items i ON i.item_id = c.item_id"
            " LEFT JOIN categories k ON k.name = i.category CROSS JOIN circulation_settings s"
            " WHERE c.returned_at IS NULL AND c.due_at < ? ORDER BY c.due_at, c.checkout_id",
            (due_before,),
        )
        out = []
        for row in rows:
            checkout_id, member_id, item_id, name, due, renewals = row[:6]
            due_at = self._s._moment(due)
            assert due_at is not None
            loan = Loan(int(checkout_id), member_id, item_id, name, due_at, renewable=False)
            out.append(OpenLoan(loan, int(renewals), terms_of(row[6:18]), bool(row[18])))
        return out

    async def loans_fingerprint(self, due_before: datetime) -> tuple[int, int, int]:
        """What changes when a loan in the window goes out, comes back or is renewed."""
        row = await self._s._read_one(
            "SELECT count(*), coalesce(max(checkout_id), 0), coalesce(sum(renewals), 0)"
            " FROM checkouts WHERE returned_at IS NULL AND due_at < ?",
            (due_before,),
        )
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    async def ready_holds(self) -> list[ReadyHold]:
        """Holds on the hold shelf whose member has not been told yet."""
        rows = await self._s._read_all(
            "SELECT h.id, h.member_id, h.item_id, i.name, h.ready_at,"
            " COALESCE((SELECT s.hold_hours FROM circulation_settings s LIMIT 1), 48)"
            " FROM holds h JOIN items i ON i.item_id = h.item_id"
            " WHERE h.state = 'ready' AND h.notified_at IS NULL ORDER BY h.id",
            (),
        )
        out = []
        for hold_id, member_id, item_id, name, ready, hours in rows:
            ready_at = self._s._moment(ready)
            assert ready_at is not None
            out.append(ReadyHold(int(hold_id), member_id, item_id, name, ready_at, int(hours)))
        return out

    async def unsubscribed(self) -> frozenset[str]:
        """Members who asked for no more digests or overdue mail."""
        rows = await self._s._read_all(
            "SELECT member_id FROM reminder_subscriptions WHERE unsubscribed_at IS NOT NULL", ()
        )
        return frozenset(str(r[0]) for r in rows)

    # -- claiming ------------------------------------------------------------------------

    async def taken(self, claims: set[str]) -> set[str]:
        """Which of ``claims`` are already claimed (a read: no lock, no write)."""
        keys = sorted(claims)
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._s._read_all(
                f"SELECT claim FROM reminder_claims WHERE claim IN ({marks})",  # noqa: S608 - only ? marks
                tuple(chunk),
            )
            found.update(str(r[0]) for r in rows)
        return found

    async def claim(self, reminder: Reminder, now: datetime) -> int | None:
        """Queue ``reminder`` if its mail and at least one line are still unclaimed.

        Returns the delivery id, or None when there is nothing (left) to send: another
        round or central claimed it, or every loan in it came back.
        """
        try:
            async with self._s._rollout_tx() as tx:
                return await self._claim(tx, reminder, now)
        except _NothingToClaim:
            return None

    async def _claim(self, tx: Tx, reminder: Reminder, now: datetime) -> int:
        email_row = await self._s._tx_one(
            tx, "SELECT email FROM member_emails WHERE member_id = ?", (reminder.member_id,)
        )
        email = None if email_row is None else str(email_row[0])
        created = await self._s._tx_one(
            tx,
            "INSERT INTO reminder_deliveries (member_id, kind, step, email, lines, status,"
            " created_at, next_attempt_at, updated_at) VALUES (?, ?, ?, ?, '[]', ?, ?, ?, ?)"
            " RETURNING delivery_id",
            (
                reminder.member_id,
                reminder.kind.value,
                reminder.step,
                email,
                "queued" if email else "no_address",
                now,
                now if email else None,
                now,
            ),
        )
        assert created is not None
        delivery_id = int(created[0])
        if not await self._s._tx_exec(tx, _CLAIM, (reminder.claim, delivery_id, now)):
            raise _NothingToClaim
        kept: list[Line] = []
        # Sorted, so two centrals claiming overlapping lines take them in one order and
        # never deadlock (PostgreSQL waits on the other's uncommitted claim).
        for line in sorted(reminder.lines, key=lambda x: x.claim):
            if not await self._still_wanted(tx, line):
                continue
            if await self._s._tx_exec(tx, _CLAIM, (line.claim, delivery_id, now)):
                kept.append(line)
        if not kept:
            raise _NothingToClaim
        await self._s._tx_exec(
            tx,
            "UPDATE reminder_deliveries SET lines = ? WHERE delivery_id = ?",
            (json.dumps(lines_json(kept)), delivery_id),
        )
        await self._token(tx, reminder.member_id)
        return delivery_id

    async def _still_wanted(self, tx: Tx, line: Line) -> bool:
        if line.checkout_id is not None:
            row = await self._s._tx_one(tx, self._d.locking(_STILL_OUT), (line.checkout_id,))
            return row is not None
        if line.hold_id is not None:
            return await self._hold_waiting(tx, line.hold_id)
        return False

    async def _hold_waiting(self, tx: Tx, hold_id: int) -> bool:
        # Locked like a loan: a hold expired, fulfilled or cancelled meanwhile gets no mail.
        row = await self._s._tx_one(tx, self._d.locking(_STILL_READY), (hold_id,))
        return row is not None

    async def _token(self, tx: Tx, member_id: str) -> None:
        # One unsubscribe token per member, made with the first mail; racing centrals
        # keep whichever was written first.
        await self._s._tx_exec(
            tx,
            "INSERT INTO reminder_subscriptions (member_id, token) VALUES (?, ?)"
            " ON CONFLICT (member_id) DO NOTHING",
            (member_id, secrets.token_urlsafe(16)),
        )

    # -- sending -------------------------------------------------------------------------

    async def due_deliveries(self, now: datetime, max_attempts: int) -> list[Delivery]:
        """Queued or temporarily failed mails whose next attempt is due."""
        rows = await self._s._read_all(
            _DELIVERY + " WHERE d.status IN ('queued', 'failed') AND d.attempts < ?"
            " AND d.next_attempt_at <= ? ORDER BY d.delivery_id LIMIT 200",
            (max_attempts, now),
        )
        return [self._delivery(r) for r in rows]

    async def take(self, delivery: Delivery, now: datetime, lease_until: datetime) -> bool:
        """Take one attempt at ``delivery``; False if another central took it first.

        The attempt is leased: should this central die mid-send, the mail is tried again
        after ``lease_until`` (so a crash can repeat a mail, never lose one).
        """
        async with self._s._rollout_tx() as tx:
            taken = await self._s._tx_exec(
                tx,
                "UPDATE reminder_deliveries SET attempts = attempts + 1, next_attempt_at = ?,"
                " updated_at = ? WHERE delivery_id = ? AND attempts = ?"
                " AND status IN ('queued', 'failed') AND next_attempt_at <= ?",
                (lease_until, now, delivery.delivery_id, delivery.attempts, now),
            )
        return taken == 1

    async def still_out(self, lines: Sequence[Line]) -> tuple[Line, ...]:
        """The lines whose loan is still out (or hold still untold), right before a send."""
        kept = []
        async with self._s._rollout_tx() as tx:
            for line in lines:
                if await self._still_wanted(tx, line):
                    kept.append(line)
        return tuple(kept)

    async def finish(
        self,
        delivery_id: int,
        status: str,
        now: datetime,
        *,
        error: str | None = None,
        retry_at: datetime | None = None,
        holds: Sequence[int] = (),
    ) -> None:
        """Record how an attempt ended; a delivered hold-ready mail starts the hold's clock."""
        async with self._s._rollout_tx() as tx:
            await self._s._tx_exec(
                tx,
                "UPDATE reminder_deliveries SET status = ?, last_error = ?, next_attempt_at = ?,"
                " sent_at = ?, updated_at = ? WHERE delivery_id = ?",
                (status, error, retry_at, now if status == "sent" else None, now, delivery_id),
            )
            if status == "sent":
                for hold_id in holds:
                    await self._notified(tx, hold_id, now)

    async def _notified(self, tx: Tx, hold_id: int, now: datetime) -> None:
        # Circulation's own write: the hold's expiry clock starts at the delivered notice.
        assert isinstance(tx, CirculationQueries)
        await tx.mark_notified(hold_id, now)

    # -- pruning -----------------------------------------------------------------------------

    async def prune(self, before: datetime, *, chunk: int = 500) -> tuple[int, int]:
        """Forget claims made before ``before`` that guard nothing any more, then the
        delivery log rows from before it that no claim points to; how many of each.

        A claim guards nothing once compose can no longer produce it: its day is past
        (a digest's or an overdue mail's own claim), its loan is back, or its hold is no
        longer ready and untold (``subject_of``). Everything else is kept, however old:
        a loan out for a year must not be reminded of its overdue step again.
        """
        claims = 0
        after = ""
        while True:
            rows = await self._s._read_all(
                "SELECT claim FROM reminder_claims WHERE claimed_at < ? AND claim > ?"
                " ORDER BY claim LIMIT ?",
                (before, after, chunk),
            )
            if not rows:
                break
            found = [str(r[0]) for r in rows]
            after = found[-1]
            gone = await self._guarding_nothing(found)
            if gone:
                marks = ", ".join("?" for _ in gone)
                async with self._s._rollout_tx() as tx:
                    claims += await self._s._tx_exec(
                        tx,
                        f"DELETE FROM reminder_claims WHERE claim IN ({marks})",  # noqa: S608 - only ? marks
                        tuple(gone),
                    )
        async with self._s._rollout_tx() as tx:
            # A queued mail is still to be sent, whatever its age.
            deliveries = await self._s._tx_exec(
                tx,
                "DELETE FROM reminder_deliveries WHERE created_at < ? AND status <> 'queued'"
                " AND NOT EXISTS (SELECT 1 FROM reminder_claims c"
                " WHERE c.delivery_id = reminder_deliveries.delivery_id)",
                (before,),
            )
        return claims, deliveries

    async def _guarding_nothing(self, claims: Sequence[str]) -> list[str]:
        subjects = {claim: subject_of(claim) for claim in claims}
        loans = sorted({s.checkout_id for s in subjects.values() if s.checkout_id is not None})
        holds = sorted({s.hold_id for s in subjects.values() if s.hold_id is not None})
        back = await self._ids(
            "SELECT checkout_id FROM checkouts WHERE returned_at IS NOT NULL AND checkout_id IN",
            loans,
        )
        # A hold ready and untold is still composed; any other state is not.
        done = await self._ids(
            "SELECT id FROM holds WHERE NOT (state = 'ready' AND notified_at IS NULL) AND id IN",
            holds,
        )
        return [
            claim
            for claim, s in subjects.items()
            if (s.checkout_id is None and s.hold_id is None)
            or (s.checkout_id is not None and s.checkout_id in back)
            or (s.hold_id is not None and s.hold_id in done)
        ]

    async def _ids(self, sql: str, ids: Sequence[int]) -> set[int]:
        if not ids:
            return set()
        marks = ", ".join("?" for _ in ids)
        rows = await self._s._read_all(f"{sql} ({marks})", tuple(ids))
        return {int(r[0]) for r in rows}

    # -- the log and unsubscribes ---------------------------------------------------------

    async def record(self, entry: AuditEntry) -> None:
        """Append an audit row for a reminder action (an admin's round on demand)."""
        async with self._s._rollout_tx() as tx:
            await tx.audit(entry)

    async def log(
        self, member_id: str | None = None, status: str | None = None, limit: int = 200
    ) -> list[Delivery]:
        """The delivery log, newest first, filtered by member and status."""
        where, args = ["1 = 1"], []
        if member_id is not None:
            where.append("d.member_id = ?")
            args.append(member_id)
        if status is not None:
            where.append("d.status = ?")
            args.append(status)
        rows = await self._s._read_all(
            f"{_DELIVERY} WHERE {' AND '.join(where)} ORDER BY d.delivery_id DESC LIMIT ?",
            (*args, limit),
        )
        return [self._delivery(r) for r in rows]

    async def subscriber(self, token: str) -> tuple[str, bool] | None:
        """The member an unsubscribe token belongs to, and whether they unsubscribed."""
        row = await self._s._read_one(
            "SELECT member_id, unsubscribed_at FROM reminder_subscriptions WHERE token = ?",
            (token,),
        )
        return None if row is None else (str(row[0]), row[1] is not None)

    async def unsubscribe(self, token: str, now: datetime) -> str | None:
        """Stop digests and overdue mail for the token's member (audited); their id, or None."""
        async with self._s._rollout_tx() as tx:
            row = await self._s._tx_one(
                tx, "SELECT member_id FROM reminder_subscriptions WHERE token = ?", (token,)
            )
            if row is None:
                return None
            changed = await self._s._tx_exec(
                tx,
                "UPDATE reminder_subscriptions SET unsubscribed_at = ?"
                " WHERE token = ? AND unsubscribed_at IS NULL",
                (now, token),
            )
            if changed:
                await tx.audit(
                    AuditEntry(now, "member:web", "reminders.unsubscribe", member_id=str(row[0]))
                )
        return str(row[0])

    def _delivery(self, row: Sequence[Any]) -> Delivery:
        (did, member, name, kind, step, email, lines, status, attempts, error) = row[:10]
        created, next_at, sent, token = row[10:]
        created_at = self._s._moment(created)
        assert created_at is not None
        return Delivery(
            int(did),
            str(member),
            str(name),
            Kind(kind),
            None if step is None else int(step),
            email,
            lines_from_json(json.loads(lines)),
            str(status),
            int(attempts),
            error,
            created_at,
            self._s._moment(next_at),
            self._s._moment(sent),
            token,
        )


def _settings_detail(settings: ReminderSettings) -> dict[str, Any]:
    return {
        "enabled": settings.enabled,
        "digest_hour": settings.digest_hour,
        "timezone": settings.timezone,
        "due_soon_days": settings.due_soon_days,
        "overdue_days": list(settings.overdue_days),
    }
