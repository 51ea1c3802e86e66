"""PostgreSQL's batched scan transaction: facts read and writes applied one statement a round.

:class:`SnapshotTx` is a :class:`central.storage.base.Tx` whose reads are answered from the
facts ``cs_scan_step`` (migration 0013) returned and whose writes are queued, to be applied
by the next step in the order they were made. Anything a snapshot cannot answer (a
cool-down record never created, a query outside the scan's facts) first applies the queued
writes and then runs as the per-scan path would, on the same transaction: every row it may
touch is already locked, so it only costs round trips, never the lock order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from broker.messages import Availability, AvailabilityState, Verdict, encode
from central.storage import chain
from central.storage.base import AuditEntry, CheckoutRow, ItemRow, KioskRow, MemberRow, PassUse
from central.storage.postgres import PostgresTx
from central.storage.rollout import FlagRow, flag_from_row
from central.storage.rows import HoldRow, HoldState, ReservationRow, SessionRow, Standing, Terms
from central.storage.scan_tx import availability_of, terms_of

STEP_SQL = (
    "SELECT cs_scan_step($1, $2::jsonb, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
    " $15, $16)"
)
_Row = list[Any]


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _moment(value: Any) -> datetime:
    return datetime.fromisoformat(value)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass(slots=True)
class Request:
    """The events of one step and every key whose facts (and, first, locks) it needs."""

    events: list[tuple[str, str]] = field(default_factory=list)
    kiosks: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)
    members: set[str] = field(default_factory=set)  # the passes' (SQL adds the sessions')
    passes: set[str] = field(default_factory=set)
    pairs: set[tuple[str, str]] = field(default_factory=set)  # (kiosk, labelled item)
    buckets: dict[str, float] = field(default_factory=dict)  # key -> full level


@dataclass(frozen=True, slots=True)
class Shape:
    """What every request of a batch asks besides its keys (from the abuse limits)."""

    member_full: float | None  # None: no member rate buckets
    fail_since: datetime | None  # None: failures are not counted
    fail_reasons: tuple[str, ...]


class Snapshot:
    """The facts one step returned, keyed as ``cs_scan_step`` keys them."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.verdicts: dict[str, str] = data.get("verdicts") or {}
        self.kiosks: dict[str, _Row] = data.get("kiosks") or {}
        self.sessions: dict[str, _Row] = data.get("sessions") or {}
        self.buckets: dict[str, _Row] = data.get("buckets") or {}
        self.flag: _Row | None = data.get("flag")
        self.items: dict[str, _Row] = data.get("items") or {}
        self.terms: dict[str, _Row] = data.get("terms") or {}
        self.checkouts: dict[str, _Row] = data.get("checkouts") or {}
        self.holds: dict[str, list[_Row]] = data.get("holds") or {}
        self.reservations: dict[str, _Row | None] = data.get("reservations") or {}
        self.members: dict[str, _Row] = data.get("members") or {}
        self.loans: dict[str, int] = data.get("loans") or {}
        self.standing: dict[str, _Row] = data.get("standing") or {}
        self.passes: dict[str, _Row] = data.get("passes") or {}
        self.failures: dict[str, int] = data.get("failures") or {}

    def session_member(self, kiosk_id: str) -> str | None:
        """The member whose session is open at ``kiosk_id``, if any."""
        row = self.sessions.get(kiosk_id)
        return None if row is None else str(row[2])


class SnapshotTx(PostgresTx):
    """A scan transaction answered from a :class:`Snapshot`, its writes queued in order.

    The batch shell points it at each event in turn (:meth:`begin_event`); an event that
    needs what the snapshot lacks goes live for the rest of its decision.
    """

    def __init__(self, conn: asyncpg.Connection, now: datetime, shape: Shape) -> None:
        super().__init__(conn)
        self.now = now
        self.shape = shape
        self.snapshot = Snapshot({})
        self.ops: list[list[Any]] = []
        self.statements = 0  # round trips on this transaction (BEGIN and COMMIT aside)
        self.changed: dict[int, list[Availability]] = {}
        self._bumps: list[int] = []  # the event each queued bump belongs to, in order
        self._event = -1
        self._live = False
        self._asked: frozenset[str] = frozenset()  # the passes the snapshot was asked about
        # kiosk -> its session's member after this round's writes (None: no session)
        self.sessions_after: dict[str, str | None] = {}

    def begin_event(self, index: int) -> list[Availability]:
        """Answer for event ``index`` next; the list its changed availability lands in."""
        self._event = index
        self._live = False
        return self.changed.setdefault(index, [])

    async def step(self, request: Request | None, *, lock: bool) -> None:
        """Apply the queued writes and, for ``request``, take its locks and load its facts."""
        args: list[Any] = [self.now, json.dumps(self.ops) if self.ops else None, lock]
        if request is None:
            args += [None] * 13
        else:
            keys = sorted(request.buckets)
            pairs = sorted(request.pairs)
            args += [
                [k for k, _ in request.events],
                [e for _, e in request.events],
                sorted(request.kiosks),
                sorted(request.items),
                sorted(request.members),
                sorted(request.passes),
                [k for k, _ in pairs],
                [i for _, i in pairs],
                keys,
                [request.buckets[k] for k in keys],
                self.shape.member_full,
                self.shape.fail_since,
                list(self.shape.fail_reasons),
            ]
        self.statements += 1
        result = json.loads(await self.conn.fetchval(STEP_SQL, *args))
        for index, row in zip(self._bumps, result["bumped"], strict=True):
            self.changed[index].append(_availability(row, self.now))
        self.ops, self._bumps = [], []
        if request is not None:
            self.snapshot = Snapshot(result["facts"])
            self._asked = frozenset(request.passes)

    async def _go_live(self) -> None:
        if not self._live:
            if self.ops:
                await self.step(None, lock=False)
            self._live = True

    # --- the primitives: anything not answered below runs live, after the queued writes ---

    async def _one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        await self._go_live()
        self.statements += 1
        return await super()._one(sql, args)

    async def _exec(self, sql: str, args: tuple[Any, ...]) -> int:
        await self._go_live()
        self.statements += 1
        return await super()._exec(sql, args)

    async def _all(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        await self._go_live()
        self.statements += 1
        return await super()._all(sql, args)

    # --- reads from the snapshot ---------------------------------------------------------

    async def find_verdict(self, kiosk_id: str, event_id: str) -> Verdict | None:
        if self._live:
            return await super().find_verdict(kiosk_id, event_id)
        text = self.snapshot.verdicts.get(f"{kiosk_id}/{event_id}")
        return None if text is None else Verdict.model_validate_json(text)

    async def kiosk(self, kiosk_id: str) -> KioskRow | None:
        if self._live:
            return await super().kiosk(kiosk_id)
        row = self.snapshot.kiosks.get(kiosk_id)
        if row is None:
            return None
        return KioskRow(
            row[0], row[1], bool(row[2]), _at(row[3]), row[4], int(row[5]), bool(row[6])
        )

    async def open_session(self, kiosk_id: str, now: datetime) -> SessionRow | None:
        if self._live or now != self.now:
            return await super().open_session(kiosk_id, now)
        row = self.snapshot.sessions.get(kiosk_id)
        return None if row is None else SessionRow(int(row[0]), row[1], row[2], _moment(row[3]))

    async def bucket(self, key: str, now: datetime, full: float) -> tuple[float, datetime]:
        row = self.snapshot.buckets.get(key)
        if self._live or row is None or now != self.now:
            # A bucket the step did not lock (a cool-down record never written): created
            # and locked live, under the kiosk row's lock as in the per-scan path.
            return await super().bucket(key, now, full)
        return float(row[0]), _moment(row[1])

    async def rollout_flag(self) -> FlagRow:
        if self._live or self.snapshot.flag is None:
            return await super().rollout_flag()
        return flag_from_row(self.snapshot.flag, _at)

    async def item(self, item_id: str) -> ItemRow | None:
        if self._live:
            return await super().item(item_id)
        row = self.snapshot.items.get(item_id)
        return None if row is None else ItemRow(*row)

    async def item_terms(self, item_id: str) -> Terms:
        row = self.snapshot.terms.get(item_id)
        if self._live or row is None:
            return await super().item_terms(item_id)
        return terms_of(row)

    async def open_checkout(self, item_id: str) -> CheckoutRow | None:
        if self._live or item_id not in self.snapshot.items:
            return await super().open_checkout(item_id)
        row = self.snapshot.checkouts.get(item_id)
        if row is None:
            return None
        return CheckoutRow(row[0], row[1], row[2], _moment(row[3]), _moment(row[4]), int(row[5]))

    async def item_holds(self, item_id: str) -> tuple[HoldRow, ...]:
        if self._live or item_id not in self.snapshot.items:
            return await super().item_holds(item_id)
        return tuple(
            HoldRow(int(r[0]), r[1], r[2], _moment(r[3]), HoldState(r[4]), _at(r[5]), _at(r[6]))
            for r in self.snapshot.holds.get(item_id, [])
        )

    async def next_reservation(self, item_id: str, now: datetime) -> ReservationRow | None:
        if self._live or now != self.now or item_id not in self.snapshot.reservations:
            return await super().next_reservation(item_id, now)
        row = self.snapshot.reservations[item_id]
        if row is None:
            return None
        return ReservationRow(int(row[0]), row[1], row[2], _moment(row[3]), _moment(row[4]))

    async def member(self, member_id: str) -> MemberRow | None:
        if self._live or member_id not in self.snapshot.loans:
            return await super().member(member_id)
        row = self.snapshot.members.get(member_id)
        return None if row is None else MemberRow(row[0], row[1], bool(row[2]), row[3])

    async def open_checkout_count(self, member_id: str) -> int:
        count = self.snapshot.loans.get(member_id)
        if self._live or count is None:
            return await super().open_checkout_count(member_id)
        return int(count)

    async def standing(self, member_id: str, category: str | None, now: datetime) -> Standing:
        row = self.snapshot.standing.get(f"{member_id}|{category or ''}")
        if self._live or row is None or now != self.now:
            return await super().standing(member_id, category, now)
        return Standing(
            trained=category is None or int(row[0]) > 0,
            agreed=int(row[1]) == 0,
            oldest_due=_at(row[2]),
            out_in_category=int(row[3]),
        )

    async def recent_failures(self, kiosk_id: str, since: datetime, reasons: Sequence[str]) -> int:
        counted = self.snapshot.failures.get(kiosk_id)
        same = since == self.shape.fail_since and tuple(reasons) == self.shape.fail_reasons
        if self._live or counted is None or not same:
            return await super().recent_failures(kiosk_id, since, reasons)
        # The step counted what was written before it; add this round's queued verdicts.
        queued = sum(
            1 for op in self.ops if op[0] == "verdict" and op[2] == kiosk_id and op[6] in reasons
        )
        return int(counted) + queued

    # --- writes, queued in order -----------------------------------------------------------

    def _queue(self, *op: Any) -> None:
        self.ops.append(list(op))

    async def consume_pass(
        self, pass_id: str, member_id: str, kiosk_id: str, now: datetime
    ) -> PassUse:
        row = self.snapshot.passes.get(pass_id)
        if self._live or now != self.now or (row is None and pass_id not in self._asked):
            return await super().consume_pass(pass_id, member_id, kiosk_id, now)
        # The pass row is locked: the decision from it is the conditional write's outcome.
        if row is None or row[0] != member_id:
            return PassUse.UNKNOWN
        if row[2] is not None:
            return PassUse.INVALIDATED
        if row[1] is not None:
            return PassUse.ALREADY_USED
        if _moment(row[3]) <= now:
            return PassUse.EXPIRED
        self._queue("consume_pass", pass_id, member_id, kiosk_id, _iso(now))
        return PassUse.CONSUMED

    async def save_verdict(
        self,
        verdict: Verdict,
        code_hash: str | None,
        scanned_at: datetime,
        payload: bytes | None = None,
    ) -> None:
        if self._live:
            await super().save_verdict(verdict, code_hash, scanned_at, payload)
            return
        self._queue(
            "verdict",
            verdict.event_id,
            verdict.kiosk_id,
            code_hash,
            _iso(scanned_at),
            _iso(verdict.decided_at),
            verdict.reason.value,
            (payload or encode(verdict)).decode(),
        )

    async def audit(self, entry: AuditEntry) -> None:
        if self._live:
            self.statements += 1
            await super().audit(entry)
            return
        self._queue(
            "audit",
            _iso(entry.at),
            entry.actor,
            entry.action,
            entry.reason,
            entry.kiosk_id,
            entry.member_id,
            entry.item_id,
            entry.event_id,
            chain.detail_text(entry.detail),
        )

    async def save_bucket(self, key: str, tokens: float, at: datetime) -> None:
        if self._live:
            await super().save_bucket(key, tokens, at)
            return
        self._queue("bucket", key, tokens, _iso(at))

    async def close_sessions(self, kiosk_id: str, now: datetime) -> int:
        if self._live:
            return await super().close_sessions(kiosk_id, now)
        self._queue("close_sessions", kiosk_id, _iso(now))
        self.sessions_after[kiosk_id] = None
        return 1 if kiosk_id in self.snapshot.sessions else 0

    async def start_session(
        self, kiosk_id: str, member_id: str, pass_id: str, now: datetime, expires_at: datetime
    ) -> SessionRow:
        self.sessions_after[kiosk_id] = member_id
        if self._live:
            return await super().start_session(kiosk_id, member_id, pass_id, now, expires_at)
        self._queue("start_session", kiosk_id, member_id, pass_id, _iso(now), _iso(expires_at))
        # Its id is read back from the database by the next round that needs it.
        return SessionRow(-1, kiosk_id, member_id, expires_at)

    async def extend_session(self, session_id: int, expires_at: datetime) -> None:
        if self._live:
            await super().extend_session(session_id, expires_at)
            return
        self._queue("extend_session", session_id, _iso(expires_at))

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
        if self._live:
            await super().insert_checkout(
                item_id, member_id, session_id, kiosk_id, event_id, now, due_at
            )
            return
        self._queue(
            "insert_checkout",
            item_id,
            member_id,
            session_id,
            kiosk_id,
            event_id,
            _iso(now),
            _iso(due_at),
        )

    async def close_checkout(
        self, checkout_id: int, returned_at: datetime, event_id: str, kiosk_id: str
    ) -> None:
        if self._live:
            await super().close_checkout(checkout_id, returned_at, event_id, kiosk_id)
            return
        self._queue("close_checkout", checkout_id, _iso(returned_at), event_id, kiosk_id)

    async def availability(self, item_id: str, now: datetime, *, bump: bool) -> Availability:
        if self._live or not bump:
            got = await super().availability(item_id, now, bump=bump)
            if bump and self._event in self.changed:
                self.changed[self._event].append(got)
            return got
        # The bumped row is read back by the step that applies it (into ``changed``).
        self._queue("bump", item_id)
        self._bumps.append(self._event)
        # A stand-in, never published: the batch shell replaces the list it lands in.
        return Availability.model_construct(
            item_id=item_id,
            shelf_id="",
            name="",
            state=AvailabilityState.AVAILABLE,
            seq=0,
            changed_at=now,
        )

    async def set_blocked_until(self, kiosk_id: str, until: datetime | None) -> bool:
        if self._live or kiosk_id not in self.snapshot.kiosks:
            return await super().set_blocked_until(kiosk_id, until)
        self._queue("blocked_until", kiosk_id, _iso(until))
        return True

    async def place_hold(self, item_id: str, member_id: str, via: str, now: datetime) -> int:
        if self._live:
            return await super().place_hold(item_id, member_id, via, now)
        self._queue("place_hold", item_id, member_id, _iso(now), via)
        return -1  # the scan path never reads it back

    async def move_hold(self, hold_id: int, to: HoldState, now: datetime) -> None:
        if self._live:
            await super().move_hold(hold_id, to, now)
        elif to is HoldState.READY:
            self._queue("hold_ready", hold_id, _iso(now))
        else:
            self._queue("hold_close", hold_id, _iso(now), to.value)

    async def renew_checkout(self, checkout_id: int, due_at: datetime) -> None:
        if self._live:
            await super().renew_checkout(checkout_id, due_at)
            return
        self._queue("renew", checkout_id, _iso(due_at))

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
        if self._live:
            return await super().open_ticket(
                item_id,
                now,
                kiosk_id=kiosk_id,
                member_id=member_id,
                checkout_id=checkout_id,
                event_id=event_id,
                note=note,
            )
        self._queue("ticket", item_id, kiosk_id, member_id, checkout_id, event_id, _iso(now), note)
        return -1

    async def set_state(self, item_id: str, state: str) -> None:
        if self._live:
            await super().set_state(item_id, state)
            return
        self._queue("item_state", item_id, state)


def _availability(row: _Row, now: datetime) -> Availability:
    """A bumped item row (``cs_scan_step``'s ``bumped``) as its availability message."""
    item_id, shelf_id, name, state, seq, due_at, held = row
    return availability_of(
        (item_id, shelf_id, name, state, seq, _at(due_at), held), now, _JSON_TIMES
    )


class _JsonTimes:
    """Times already read from JSON: the dialect hook :func:`availability_of` calls."""

    @staticmethod
    def opt_moment(value: Any) -> datetime | None:
        return value if value is None or isinstance(value, datetime) else _at(value)


_JSON_TIMES: Any = _JsonTimes()
