"""Circulation as staff run it: holds, bookings, repair tickets, policies, and the hold sweep.

Every decision is :mod:`central.circulation`'s; this service locks in the ledger's order
(item → its waitlist → member), writes, audits each action and publishes the item's
availability when it changed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from broker import topics
from broker.messages import Availability, Reason, SecurityAlert, encode
from central import circulation
from central.clock import Clock
from central.consumer import Publisher
from central.services.refusals import Refusal, RefusedError
from central.storage.base import AuditEntry, Store, Tx
from central.storage.circulation import CategoryRow, CirculationQueries, TicketRow
from central.storage.rows import HoldRow, HoldState, ReservationRow

log = logging.getLogger(__name__)


class Hold(BaseModel):
    """One member's place in an item's waitlist."""

    model_config = ConfigDict(extra="forbid")

    hold_id: int
    item_id: str
    member_id: str
    placed_at: datetime
    placed_via: str = Field(description="kiosk, app or admin.")
    state: HoldState
    ready_at: datetime | None = None
    notified_at: datetime | None = None


class Renewal(BaseModel):
    """How a renewal asked for outside a kiosk went."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason = Field(description="RENEWED, or why not.")
    due_at: datetime = Field(description="The loan's due time now.")


class Reservation(BaseModel):
    """An item booked for a member for a period."""

    model_config = ConfigDict(extra="forbid")

    reservation_id: int
    item_id: str
    member_id: str
    starts_at: datetime
    ends_at: datetime


class Category(BaseModel):
    """A category's loan policy."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    loan_days: int | None = Field(default=None, gt=0, description="None: the item's own.")
    max_renewals: int = Field(default=2, ge=0)
    max_out: int | None = Field(default=None, gt=0, description="Per member; None: no limit.")
    needs_training: bool = False
    needs_agreement: bool = False
    inspection_required: bool = Field(
        default=False, description="Returns wait in maintenance for a staff check."
    )
    buffer_hours: int = Field(default=0, ge=0, description="Kept free before a booking.")


class Settings(BaseModel):
    """The library's circulation settings."""

    model_config = ConfigDict(extra="forbid")

    hold_hours: int = Field(default=48, gt=0, description="How long a ready hold waits.")
    overdue_block_days: int = Field(default=14, ge=0, description="0: never blocks.")
    renew_grace_hours: int = Field(default=24, ge=0)
    reservation_min_hours: int = Field(default=24, ge=0)


class Ticket(BaseModel):
    """A repair ticket."""

    model_config = ConfigDict(extra="forbid")

    ticket_id: int
    item_id: str
    kiosk_id: str | None
    member_id: str | None
    checkout_id: int | None
    opened_at: datetime
    note: str
    closed_at: datetime | None
    closed_by: str | None


def _q(tx: Tx) -> CirculationQueries:
    assert isinstance(tx, CirculationQueries), "every backend's transaction has them"
    return tx


def _hold(row: HoldRow, via: str) -> Hold:
    return Hold(
        hold_id=row.hold_id,
        item_id=row.item_id,
        member_id=row.member_id,
        placed_at=row.placed_at,
        placed_via=via,
        state=row.state,
        ready_at=row.ready_at,
        notified_at=row.notified_at,
    )


def _reservation(row: ReservationRow) -> Reservation:
    # The row's fields are the answer's: read them by name rather than copy each.
    return Reservation.model_validate(row, from_attributes=True)


def _ticket(row: TicketRow) -> Ticket:
    return Ticket.model_validate(row, from_attributes=True)


async def settle_item(tx: Tx, item_id: str, now: datetime, actor: str) -> bool:
    """Pass the item's waitlist on (expire run-out holds, allocate a free item); whether
    anything moved. The caller holds the item's row lock (``tx.item``)."""
    item = await tx.item(item_id)
    if item is None:
        return False
    loan = await tx.open_checkout(item_id)
    holds = await tx.item_holds(item_id)
    terms = await tx.item_terms(item_id)
    free = item.state == "available" and loan is None
    moves = circulation.pass_on(holds, now, terms.hold_hours, free=free)
    for hold_id in moves.expire:
        await tx.move_hold(hold_id, HoldState.EXPIRED, now)
    if moves.ready is not None:
        await tx.move_hold(moves.ready, HoldState.READY, now)
    if moves.changed:
        detail: dict[str, object] = {str(h): "expired" for h in moves.expire}
        if moves.ready is not None:
            detail[str(moves.ready)] = "ready"
        await tx.audit(AuditEntry(now, actor, "hold.pass_on", item_id=item_id, detail=detail))
    return moves.changed


@dataclass(frozen=True)
class Circulation:
    """Circulation on one central instance, every action audited as ``actor``."""

    store: Store
    clock: Clock
    publisher: Publisher
    actor: str

    def _publish(self, availability: Availability) -> None:
        self.publisher.publish(
            topics.availability(availability.shelf_id, availability.item_id),
            encode(availability),
            retain=True,
        )

    # --- holds -----------------------------------------------------------------------------

    async def renew(self, member_id: str, item_id: str, actor: str | None = None) -> Renewal:
        """Renew a member's loan outside a kiosk (the members' app, a reminder's link), by
        the same rules as at a kiosk."""
        now = self.clock.now()
        async with self.store.write() as tx:
            if await tx.item(item_id) is None:
                raise RefusedError(Refusal.NOT_FOUND, f"item {item_id} does not exist")
            loan = await tx.open_checkout(item_id)
            if loan is None or loan.member_id != member_id:
                raise RefusedError(Refusal.NOT_FOUND, f"member {member_id} does not have it")
            holds = await tx.item_holds(item_id)
            terms = await tx.item_terms(item_id)
            refusal = circulation.renewal_refusal(
                due_at=loan.due_at,
                renewals=loan.renewals,
                terms=terms,
                others_waiting=any(h.member_id != member_id for h in holds),
                now=now,
            )
            due: datetime | Reason = refusal or Reason.RESERVED
            if refusal is None:
                reservation = await tx.next_reservation(item_id, now)
                due = circulation.renewal_due(loan.due_at, member_id, terms, reservation, now)
            reason = due if isinstance(due, Reason) else Reason.RENEWED
            await tx.audit(
                AuditEntry(
                    now,
                    actor or self.actor,
                    "loan.renew",
                    reason.value,
                    member_id=member_id,
                    item_id=item_id,
                    detail={"checkout_id": loan.checkout_id},
                )
            )
            if isinstance(due, Reason):
                return Renewal(reason=due, due_at=loan.due_at)
            await tx.renew_checkout(loan.checkout_id, due)
            availability = await tx.availability(item_id, now, bump=True)
        self._publish(availability)
        return Renewal(reason=Reason.RENEWED, due_at=due)

    async def place_hold(
        self, item_id: str, member_id: str, via: str = "admin", actor: str | None = None
    ) -> Hold:
        """Put a member on an item's waitlist (allocated at once if the item is free)."""
        now = self.clock.now()
        async with self.store.write() as tx:
            item = await tx.item(item_id)
            if item is None:
                raise RefusedError(Refusal.NOT_FOUND, f"item {item_id} does not exist")
            if item.state == "retired":
                raise RefusedError(Refusal.CONFLICT, f"item {item_id} is retired")
            loan = await tx.open_checkout(item_id)
            holds = await tx.item_holds(item_id)
            if await tx.member(member_id) is None:
                raise RefusedError(Refusal.NOT_FOUND, f"member {member_id} does not exist")
            if loan is not None and loan.member_id == member_id:
                raise RefusedError(Refusal.CONFLICT, f"member {member_id} has it out")
            if circulation.open_hold_of(holds, member_id) is not None:
                raise RefusedError(Refusal.CONFLICT, f"member {member_id} already holds it")
            hold_id = await tx.place_hold(item_id, member_id, via, now)
            await tx.audit(
                AuditEntry(
                    now,
                    actor or self.actor,
                    "hold.place",
                    item_id=item_id,
                    member_id=member_id,
                    detail={"hold_id": hold_id, "via": via},
                )
            )
            changed = await settle_item(tx, item_id, now, self.actor)
            availability = await tx.availability(item_id, now, bump=True) if changed else None
            placed = next(h for h in await tx.item_holds(item_id) if h.hold_id == hold_id)
        if availability is not None:
            self._publish(availability)
        return _hold(placed, via)

    async def cancel_hold(
        self, hold_id: int, *, member_id: str | None = None, actor: str | None = None
    ) -> None:
        """Take a hold off its waitlist (only ``member_id``'s, when given); a ready one
        passes the item on."""
        now = self.clock.now()
        async with self.store.write() as tx:
            item_id = await _q(tx).hold_item(hold_id)
            if item_id is None or await tx.item(item_id) is None:
                raise RefusedError(Refusal.NOT_FOUND, f"hold {hold_id} does not exist")
            held = {h.hold_id: h for h in await tx.item_holds(item_id)}
            if hold_id not in held:
                raise RefusedError(Refusal.CONFLICT, f"hold {hold_id} is not open")
            if member_id is not None and held[hold_id].member_id != member_id:
                raise RefusedError(Refusal.NOT_FOUND, f"hold {hold_id} does not exist")
            await tx.move_hold(hold_id, HoldState.CANCELLED, now)
            await tx.audit(
                AuditEntry(
                    now,
                    actor or self.actor,
                    "hold.cancel",
                    item_id=item_id,
                    member_id=held[hold_id].member_id,
                    detail={"hold_id": hold_id},
                )
            )
            await settle_item(tx, item_id, now, self.actor)
            availability = await tx.availability(item_id, now, bump=True)
        self._publish(availability)

    async def holds(
        self, *, item_id: str | None = None, member_id: str | None = None, open_only: bool = True
    ) -> list[Hold]:
        """Holds in queue order per item."""
        async with self.store.write() as tx:
            rows = await _q(tx).list_holds(
                item_id=item_id, member_id=member_id, open_only=open_only
            )
        return [_hold(row, via) for row, via in rows]

    async def sweep(self) -> int:
        """Expire run-out ready holds and pass their items on; how many items moved.

        Each item in its own short transaction under its row lock: two centrals sweeping
        at once move each hold once (the second finds nothing left to do).
        """
        async with self.store.write() as tx:
            items = await _q(tx).items_with_open_holds()
        moved = 0
        for item_id in items:
            now = self.clock.now()
            async with self.store.write() as tx:
                if await tx.item(item_id) is None:
                    continue
                if not await settle_item(tx, item_id, now, "system"):
                    continue
                availability = await tx.availability(item_id, now, bump=True)
            self._publish(availability)
            moved += 1
        return moved

    async def run(self, every_s: float) -> None:
        """Sweep every ``every_s`` seconds until cancelled; a failed sweep is retried."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("hold sweep failed")
            await asyncio.sleep(every_s)

    # --- reservations ----------------------------------------------------------------------

    async def reserve(
        self, item_id: str, member_id: str, starts_at: datetime, ends_at: datetime
    ) -> Reservation:
        """Book an item for a period; refused if it clashes with a booking or a loan."""
        now = self.clock.now()
        if ends_at <= starts_at or starts_at < now:
            raise RefusedError(Refusal.INVALID, "a booking starts in the future and ends later")
        async with self.store.write() as tx:
            if await tx.item(item_id) is None:
                raise RefusedError(Refusal.NOT_FOUND, f"item {item_id} does not exist")
            loan = await tx.open_checkout(item_id)
            if await tx.member(member_id) is None:
                raise RefusedError(Refusal.NOT_FOUND, f"member {member_id} does not exist")
            buffer = timedelta(hours=(await tx.item_terms(item_id)).buffer_hours)
            q = _q(tx)
            if await q.clashing_reservations(item_id, starts_at - buffer, ends_at + buffer):
                raise RefusedError(Refusal.CONFLICT, f"item {item_id} is booked then")
            if (
                loan is not None
                and loan.member_id != member_id
                and loan.due_at + buffer > starts_at
            ):
                raise RefusedError(Refusal.CONFLICT, f"item {item_id} is lent until then")
            reservation_id = await q.add_reservation(item_id, member_id, starts_at, ends_at, now)
            await tx.audit(
                AuditEntry(
                    now,
                    self.actor,
                    "reservation.add",
                    item_id=item_id,
                    member_id=member_id,
                    detail={
                        "reservation_id": reservation_id,
                        "starts_at": starts_at.isoformat(),
                        "ends_at": ends_at.isoformat(),
                    },
                )
            )
        return Reservation(
            reservation_id=reservation_id,
            item_id=item_id,
            member_id=member_id,
            starts_at=starts_at,
            ends_at=ends_at,
        )

    async def cancel_reservation(self, reservation_id: int) -> None:
        """Cancel a booking."""
        now = self.clock.now()
        async with self.store.write() as tx:
            if not await _q(tx).cancel_reservation(reservation_id):
                raise RefusedError(Refusal.NOT_FOUND, f"no booking {reservation_id}")
            await tx.audit(
                AuditEntry(
                    now,
                    self.actor,
                    "reservation.cancel",
                    detail={"reservation_id": reservation_id},
                )
            )

    async def hold_told(self, hold_id: int, how: str) -> None:
        """Staff told the member their hold is ready (by phone, at the desk): from then on it
        can run out. For members the reminders cannot reach (no address, unsubscribed from
        mail, a bounce), whose ready hold otherwise waits for them without end."""
        now = self.clock.now()
        async with self.store.write() as tx:
            if not await _q(tx).mark_notified(hold_id, now):
                raise RefusedError(
                    Refusal.CONFLICT, f"hold {hold_id} is not ready, or its member was told"
                )
            await tx.audit(
                AuditEntry(now, self.actor, "hold.told", detail={"hold_id": hold_id, "how": how})
            )

    async def reservations(self, item_id: str | None = None) -> list[Reservation]:
        """Bookings not yet over, soonest first."""
        async with self.store.write() as tx:
            rows = await _q(tx).list_reservations(item_id, self.clock.now())
        return [_reservation(r) for r in rows]

    # --- repair tickets --------------------------------------------------------------------

    async def report_problem(
        self,
        item_id: str,
        *,
        kiosk_id: str | None = None,
        member_id: str | None = None,
        checkout_id: int | None = None,
        event_id: str | None = None,
        note: str = "",
    ) -> Ticket:
        """Put the item in maintenance and open a repair ticket; staff are alerted."""
        now = self.clock.now()
        async with self.store.write() as tx:
            if await tx.item(item_id) is None:
                raise RefusedError(Refusal.NOT_FOUND, f"item {item_id} does not exist")
            q = _q(tx)
            known = None if event_id is None else await q.ticket_for_event(event_id)
            if known is None:
                ticket_id = await q.open_ticket(
                    item_id,
                    now,
                    kiosk_id=kiosk_id,
                    member_id=member_id,
                    checkout_id=checkout_id,
                    event_id=event_id,
                    note=note,
                )
                await q.set_state(item_id, "maintenance")
                await tx.audit(
                    AuditEntry(
                        now,
                        self.actor if kiosk_id is None else f"kiosk:{kiosk_id}",
                        "ticket.open",
                        kiosk_id=kiosk_id,
                        member_id=member_id,
                        item_id=item_id,
                        event_id=event_id,
                        detail={"ticket_id": ticket_id, "checkout_id": checkout_id},
                    )
                )
                availability = await tx.availability(item_id, now, bump=True)
            else:
                ticket_id, availability = known, None
            ticket = next(
                t for t in await q.list_tickets(open_only=False) if t.ticket_id == ticket_id
            )
        if availability is not None:
            self._publish(availability)
            alert = SecurityAlert(
                kind=circulation.ALERT_PROBLEM,
                kiosk_id=kiosk_id,
                member_id=member_id,
                detail=f"problem reported with item {item_id} (ticket {ticket_id})",
                at=now,
            )
            self.publisher.publish(topics.ALERTS, encode(alert))
        return _ticket(ticket)

    async def tickets(self, *, open_only: bool = True) -> list[Ticket]:
        """Repair tickets, newest first."""
        async with self.store.write() as tx:
            rows = await _q(tx).list_tickets(open_only=open_only)
        return [_ticket(r) for r in rows]

    async def close_ticket(self, ticket_id: int, *, back_in_service: bool = True) -> None:
        """Close a ticket; the item goes back on its shelf (and to its waitlist) unless kept."""
        now = self.clock.now()
        async with self.store.write() as tx:
            q = _q(tx)
            found = [t for t in await q.list_tickets(open_only=True) if t.ticket_id == ticket_id]
            if not found or await tx.item(found[0].item_id) is None:
                raise RefusedError(Refusal.NOT_FOUND, f"no open ticket {ticket_id}")
            item_id = found[0].item_id
            if await q.close_ticket(ticket_id, self.actor, now) is None:
                raise RefusedError(Refusal.NOT_FOUND, f"no open ticket {ticket_id}")
            if back_in_service:
                await q.set_state(item_id, "available")
            await tx.audit(
                AuditEntry(
                    now,
                    self.actor,
                    "ticket.close",
                    item_id=item_id,
                    detail={"ticket_id": ticket_id, "back_in_service": back_in_service},
                )
            )
            await settle_item(tx, item_id, now, self.actor)
            availability = await tx.availability(item_id, now, bump=True)
        self._publish(availability)

    # --- policies --------------------------------------------------------------------------

    async def put_category(self, category: Category) -> None:
        """Create or replace a category's loan policy."""
        row = CategoryRow(**category.model_dump())
        async with self.store.write() as tx:
            await _q(tx).put_category(row)
            await tx.audit(
                AuditEntry(
                    self.clock.now(), self.actor, "category.put", detail=category.model_dump()
                )
            )

    async def categories(self) -> list[Category]:
        """Every category's policy."""
        async with self.store.write() as tx:
            rows = await _q(tx).categories()
        return [
            Category(
                name=r.name,
                loan_days=r.loan_days,
                max_renewals=r.max_renewals,
                max_out=r.max_out,
                needs_training=r.needs_training,
                needs_agreement=r.needs_agreement,
                inspection_required=r.inspection_required,
                buffer_hours=r.buffer_hours,
            )
            for r in rows
        ]

    async def file_item(self, item_id: str, category: str | None) -> None:
        """File an item under a category (None: the default policy)."""
        async with self.store.write() as tx:
            q = _q(tx)
            if category is not None and category not in {c.name for c in await q.categories()}:
                raise RefusedError(Refusal.NOT_FOUND, f"category {category} does not exist")
            if not await q.set_item_category(item_id, category):
                raise RefusedError(Refusal.NOT_FOUND, f"item {item_id} does not exist")
            await tx.audit(
                AuditEntry(
                    self.clock.now(),
                    self.actor,
                    "item.category",
                    item_id=item_id,
                    detail={"category": category},
                )
            )

    async def record_training(self, member_id: str, category: str) -> None:
        """Note that a member is trained for a category."""
        now = self.clock.now()
        async with self.store.write() as tx:
            q = _q(tx)
            if category not in {c.name for c in await q.categories()}:
                raise RefusedError(Refusal.NOT_FOUND, f"category {category} does not exist")
            if await tx.member(member_id) is None:
                raise RefusedError(Refusal.NOT_FOUND, f"member {member_id} does not exist")
            await q.record_training(member_id, category, self.actor, now)
            await tx.audit(
                AuditEntry(
                    now,
                    self.actor,
                    "training.record",
                    member_id=member_id,
                    detail={"category": category},
                )
            )

    async def publish_agreement(self, text: str) -> int:
        """Make ``text`` the current lending agreement; its version."""
        now = self.clock.now()
        async with self.store.write() as tx:
            version = await _q(tx).publish_agreement(text, now)
            await tx.audit(
                AuditEntry(now, self.actor, "agreement.publish", detail={"version": version})
            )
        return version

    async def accept_agreement(self, member_id: str) -> int:
        """Record that a member accepted the current agreement; its version."""
        now = self.clock.now()
        async with self.store.write() as tx:
            if await tx.member(member_id) is None:
                raise RefusedError(Refusal.NOT_FOUND, f"member {member_id} does not exist")
            version = await _q(tx).accept_agreement(member_id, now)
            if version is None:
                raise RefusedError(Refusal.CONFLICT, "there is no current agreement")
            await tx.audit(
                AuditEntry(
                    now,
                    self.actor,
                    "agreement.accept",
                    member_id=member_id,
                    detail={"version": version},
                )
            )
        return version

    async def settings(self) -> Settings:
        """The library's circulation settings."""
        async with self.store.write() as tx:
            hold, block, grace, least = await _q(tx).settings_row()
        return Settings(
            hold_hours=hold,
            overdue_block_days=block,
            renew_grace_hours=grace,
            reservation_min_hours=least,
        )

    async def put_settings(self, settings: Settings) -> None:
        """Replace the library's circulation settings."""
        async with self.store.write() as tx:
            await _q(tx).put_settings(
                (
                    settings.hold_hours,
                    settings.overdue_block_days,
                    settings.renew_grace_hours,
                    settings.reservation_min_hours,
                )
            )
            await tx.audit(
                AuditEntry(
                    self.clock.now(),
                    self.actor,
                    "circulation.settings",
                    detail=settings.model_dump(),
                )
            )
