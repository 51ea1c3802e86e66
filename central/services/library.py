"""The library's records as admins and volunteers change them: shelves, items, members, passes.

Each method is one action a surface offers (the admin API today, the staff console later);
it takes plain values, writes through the store, publishes what kiosks must see, and
raises :class:`~central.services.refusals.RefusedError` with a reason when it says no.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from broker import topics
from broker.messages import Availability, Reason, encode
from central.clock import Clock
from central.consumer import Publisher
from central.services.refusals import Refusal, RefusedError, audited
from central.storage.base import Edited, ItemRow, MemberRow, ShelfRow, Store
from central.tokens import TokenSigner, new_id

# New items' availability goes out this many messages at a time, this far apart.
_PUBLISH_SLICE = 100
_PUBLISH_PAUSE_S = 0.005


class IssuedPass(BaseModel):
    """An issued pass."""

    pass_id: str
    member_id: str
    code: str
    expires_at: datetime


class Label(BaseModel):
    """An item's current label code."""

    item_id: str
    version: int
    code: str


@dataclass(frozen=True)
class Library:
    """Library records on one central instance, every write audited as ``actor``."""

    store: Store
    signer: TokenSigner
    clock: Clock
    publisher: Publisher
    pass_ttl_s: int
    actor: str

    async def _write(self, work: Any, action: str, **subject: str) -> Any:
        return await audited(self.store, self.clock, self.actor, work, action, **subject)

    def _publish(self, availability: Availability) -> None:
        self.publisher.publish(
            topics.availability(availability.shelf_id, availability.item_id),
            encode(availability),
            retain=True,
        )

    async def add_shelf(self, shelf_id: str, name: str) -> None:
        """A new shelf."""
        await self._write(
            self.store.add_shelf(shelf_id, name, self.clock.now(), self.actor),
            "shelf.add",
            shelf_id=shelf_id,
        )

    async def add_item(
        self, item_id: str, shelf_id: str, name: str, loan_days: int
    ) -> Availability:
        """A new item, announced to its shelf's kiosks as available."""
        availability: Availability = await self._write(
            self.store.add_item(
                item_id, shelf_id, name, self.clock.now(), self.actor, loan_days=loan_days
            ),
            "item.add",
            item_id=item_id,
        )
        self._publish(availability)
        return availability

    async def add_member(self, member_id: str, name: str, checkout_limit: int) -> None:
        """A new member."""
        await self._write(
            self.store.add_member(
                member_id, name, self.clock.now(), self.actor, checkout_limit=checkout_limit
            ),
            "member.add",
            member_id=member_id,
        )

    async def issue_pass(self, member_id: str, ttl_s: int | None) -> IssuedPass:
        """A single-use pass for a member, valid ``ttl_s`` (or the default) from now."""
        member = await self.store.get_member(member_id)
        if member is None:
            raise RefusedError(Refusal.NOT_FOUND, f"no member {member_id}")
        if member.suspended:
            # The kiosk would refuse it anyway; the admin should hear it now, not the member.
            raise RefusedError(
                Refusal.MEMBER_SUSPENDED,
                {"reason": Reason.MEMBER_SUSPENDED.value, "message": f"{member_id} is suspended"},
            )
        now = self.clock.now()
        pass_id = new_id()
        # Codes carry whole seconds; store the same instant the code will be checked against.
        expires_at = (now + timedelta(seconds=ttl_s or self.pass_ttl_s)).replace(microsecond=0)
        await self._write(
            self.store.issue_pass(pass_id, member_id, now, expires_at, self.actor),
            "pass.issue",
            member_id=member_id,
        )
        return IssuedPass(
            pass_id=pass_id,
            member_id=member_id,
            expires_at=expires_at,
            code=self.signer.member_pass(pass_id, member_id, expires_at),
        )

    async def label(self, item_id: str) -> Label:
        """The item's current label code."""
        item = await self.item(item_id)
        return self._label(item)

    async def reprint_label(self, item_id: str) -> Label:
        """A new label version for the item; the old label stops working."""
        row: ItemRow = await self._write(
            self.store.reprint_label(item_id, self.clock.now(), self.actor),
            "label.reprint",
            item_id=item_id,
        )
        return self._label(row)

    def _label(self, item: ItemRow) -> Label:
        return Label(
            item_id=item.item_id,
            version=item.label_version,
            code=self.signer.label(item.item_id, item.label_version),
        )

    async def availability(self) -> Sequence[Availability]:
        """Every item and where it stands."""
        return await self.store.all_availability(self.clock.now())

    async def item(self, item_id: str) -> ItemRow:
        """One item, or a NOT_FOUND refusal."""
        row = await self.store.get_item(item_id)
        if row is None:
            raise RefusedError(Refusal.NOT_FOUND, f"no item {item_id}")
        return row

    async def member(self, member_id: str) -> MemberRow:
        """One member, or a NOT_FOUND refusal."""
        row = await self.store.get_member(member_id)
        if row is None:
            raise RefusedError(Refusal.NOT_FOUND, f"no member {member_id}")
        return row

    async def shelves(self) -> Sequence[ShelfRow]:
        """Every shelf, with how many items live on it."""
        return await self.store.list_shelves()

    async def members(self) -> Sequence[MemberRow]:
        """Every member."""
        return await self.store.list_members()

    async def edit_shelf(self, shelf_id: str, changes: dict[str, Any]) -> Edited[ShelfRow]:
        """Rename a shelf."""
        edited: Edited[ShelfRow] = await self._write(
            self.store.edit_shelf(shelf_id, changes, self.clock.now(), self.actor),
            "shelf.edit",
            shelf_id=shelf_id,
        )
        return edited

    async def edit_member(self, member_id: str, changes: dict[str, Any]) -> Edited[MemberRow]:
        """Change a member's name, limit or suspension."""
        edited: Edited[MemberRow] = await self._write(
            self.store.edit_member(member_id, changes, self.clock.now(), self.actor),
            "member.edit",
            member_id=member_id,
        )
        return edited

    async def edit_item(self, item_id: str, changes: dict[str, Any]) -> Edited[ItemRow]:
        """Change an item; a move or a state change is announced to the kiosks."""
        edited: Edited[ItemRow] = await self._write(
            self.store.edit_item(item_id, changes, self.clock.now(), self.actor),
            "item.edit",
            item_id=item_id,
        )
        if edited.moved_from is not None:
            # An empty retained message clears the copy kiosks at the old shelf would
            # otherwise be handed when they reconnect.
            self.publisher.publish(
                topics.availability(edited.moved_from, item_id), b"", retain=True
            )
        if edited.availability is not None:
            self._publish(edited.availability)
        return edited

    async def import_rows(self, kind: str, rows: list[dict[str, Any]]) -> int:
        """Add many rows of one kind: all of them, or none if any is refused."""
        added = await self._write(
            self.store.import_rows(kind, rows, self.clock.now(), self.actor), "import", kind=kind
        )
        for n, availability in enumerate(added, 1):
            self._publish(availability)
            if n % _PUBLISH_SLICE == 0:
                # Verdicts leave on the same connection, behind whatever is queued: a
                # slice at a time keeps that queue (and a verdict's wait) short.
                await asyncio.sleep(_PUBLISH_PAUSE_S)
        return len(rows)
