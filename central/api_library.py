"""Admin API for library data upkeep: edit and list shelves, items, members; reprint; import."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker import topics
from broker.ids import ID_PATTERN
from broker.messages import encode
from central.admin_api import ADMIN_ACTOR, ItemIn, LabelOut, MemberIn, ShelfIn
from central.api_text import Text
from central.clock import Clock
from central.consumer import Publisher
from central.errors import NotFoundError, StorageError
from central.storage.base import (
    AuditEntry,
    Edited,
    ImportRefusedError,
    ItemRow,
    MemberRow,
    ShelfRow,
    Store,
)
from central.tokens import TokenSigner

# One import is one transaction; past this a file should be split (and it is a typo).
MAX_IMPORT_ROWS = 20_000


class _Edit(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemEdit(_Edit):
    """Changes to an item; fields left out stay as they are."""

    name: Text | None = Field(default=None, min_length=1, max_length=80, description="New name.")
    shelf_id: str | None = Field(default=None, pattern=ID_PATTERN, description="Move to shelf.")
    loan_days: int | None = Field(default=None, ge=1, le=365, description="New loan period.")
    state: Literal["available", "maintenance", "retired"] | None = Field(
        default=None, description="Lendable, away for repair, or gone for good."
    )


class ShelfEdit(_Edit):
    """Changes to a shelf."""

    name: Text = Field(min_length=1, max_length=80, description="New name, for people.")


class MemberEdit(_Edit):
    """Changes to a member; fields left out stay as they are."""

    name: Text | None = Field(default=None, min_length=1, max_length=80, description="New name.")
    suspended: bool | None = Field(default=None, description="Refuse their passes while true.")
    checkout_limit: int | None = Field(default=None, ge=0, le=100, description="Most items held.")


class ItemOut(BaseModel):
    """An item as the admin sees it."""

    item_id: str
    shelf_id: str
    name: str
    state: str
    loan_days: int
    label_version: int


class ShelfOut(BaseModel):
    """A shelf and how many items live on it."""

    shelf_id: str
    name: str
    items: int


class MemberOut(BaseModel):
    """A member as the admin sees them."""

    member_id: str
    name: str
    suspended: bool
    checkout_limit: int


class EditOut(BaseModel):
    """What an edit changed: the fields before and after (empty when nothing changed)."""

    before: dict[str, Any]
    after: dict[str, Any]


class ShelfImport(_Edit):
    """Shelves to add in one transaction."""

    rows: list[ShelfIn] = Field(max_length=MAX_IMPORT_ROWS, description="The new shelves.")


class ItemImport(_Edit):
    """Items to add in one transaction."""

    rows: list[ItemIn] = Field(max_length=MAX_IMPORT_ROWS, description="The new items.")


class MemberImport(_Edit):
    """Members to add in one transaction."""

    rows: list[MemberIn] = Field(max_length=MAX_IMPORT_ROWS, description="The new members.")


_Import = ShelfImport | ItemImport | MemberImport


class ImportOut(BaseModel):
    """How many rows one import added."""

    kind: str
    imported: int


def _item(row: ItemRow) -> ItemOut:
    return ItemOut(
        item_id=row.item_id,
        shelf_id=row.shelf_id,
        name=row.name,
        state=row.state,
        loan_days=row.loan_days,
        label_version=row.label_version,
    )


def _member(row: MemberRow) -> MemberOut:
    return MemberOut(
        member_id=row.member_id,
        name=row.name,
        suspended=row.suspended,
        checkout_limit=row.checkout_limit,
    )


def _diff(edited: Edited[Any]) -> EditOut:
    before, after = edited.before, edited.after
    fields = [f for f in before.__slots__ if getattr(before, f) != getattr(after, f)]
    return EditOut(
        before={f: getattr(before, f) for f in fields}, after={f: getattr(after, f) for f in fields}
    )


def library_router(
    store: Store, signer: TokenSigner, clock: Clock, publisher: Publisher
) -> APIRouter:
    """The routes; the caller adds the admin token check."""
    router = APIRouter()

    async def guarded(work: Any, action: str, **subject: str) -> Any:
        """Run an admin write; a refusal becomes an HTTP error and its own audit row."""
        try:
            return await work
        except (NotFoundError, StorageError) as exc:
            detail: dict[str, Any] = {"message": str(exc), **subject}
            status = 404 if isinstance(exc, NotFoundError) else 409
            body: Any = str(exc)
            if isinstance(exc, ImportRefusedError):
                problems = [
                    {"row": p.row, "column": p.column, "message": p.message} for p in exc.problems
                ]
                body = {"message": str(exc), "problems": problems}
                detail["problems"] = problems[:20]  # enough to see what went wrong
            # The write rolled back; the attempt is still an admin action worth a record.
            async with store.write() as tx:
                await tx.audit(
                    AuditEntry(
                        clock.now(),
                        ADMIN_ACTOR,
                        action,
                        "REFUSED",
                        item_id=subject.get("item_id"),
                        member_id=subject.get("member_id"),
                        detail=detail,
                    )
                )
            raise HTTPException(status, body) from exc

    @router.get("/shelves")
    async def list_shelves() -> list[ShelfOut]:
        rows: list[ShelfRow] = list(await store.list_shelves())
        return [ShelfOut(shelf_id=r.shelf_id, name=r.name, items=r.items) for r in rows]

    @router.patch("/shelves/{shelf_id}")
    async def edit_shelf(shelf_id: str, body: ShelfEdit) -> EditOut:
        edited = await guarded(
            store.edit_shelf(shelf_id, body.model_dump(), clock.now(), ADMIN_ACTOR),
            "shelf.edit",
            shelf_id=shelf_id,
        )
        return _diff(edited)

    @router.get("/members")
    async def list_members() -> list[MemberOut]:
        return [_member(r) for r in await store.list_members()]

    @router.get("/members/{member_id}")
    async def get_member(member_id: str) -> MemberOut:
        row = await store.get_member(member_id)
        if row is None:
            raise HTTPException(404, f"no member {member_id}")
        return _member(row)

    @router.patch("/members/{member_id}")
    async def edit_member(member_id: str, body: MemberEdit) -> EditOut:
        changes = body.model_dump(exclude_none=True)
        edited = await guarded(
            store.edit_member(member_id, changes, clock.now(), ADMIN_ACTOR),
            "member.edit",
            member_id=member_id,
        )
        return _diff(edited)

    @router.get("/items/{item_id}")
    async def get_item(item_id: str) -> ItemOut:
        row = await store.get_item(item_id)
        if row is None:
            raise HTTPException(404, f"no item {item_id}")
        return _item(row)

    @router.patch("/items/{item_id}")
    async def edit_item(item_id: str, body: ItemEdit) -> EditOut:
        changes = body.model_dump(exclude_none=True)
        edited: Edited[ItemRow] = await guarded(
            store.edit_item(item_id, changes, clock.now(), ADMIN_ACTOR),
            "item.edit",
            item_id=item_id,
        )
        if edited.moved_from is not None:
            # An empty retained message clears the copy kiosks at the old shelf would
            # otherwise be handed when they reconnect.
            publisher.publish(topics.availability(edited.moved_from, item_id), b"", retain=True)
        if edited.availability is not None:
            publisher.publish(
                topics.availability(edited.after.shelf_id, item_id),
                encode(edited.availability),
                retain=True,
            )
        return _diff(edited)

    @router.post("/items/{item_id}/label")
    async def reprint_label(item_id: str) -> LabelOut:
        row: ItemRow = await guarded(
            store.reprint_label(item_id, clock.now(), ADMIN_ACTOR), "label.reprint", item_id=item_id
        )
        return LabelOut(
            item_id=item_id,
            version=row.label_version,
            code=signer.label(item_id, row.label_version),
        )

    async def _import(kind: str, model: type[_Import], request: Request) -> ImportOut:
        # Up to 20,000 rows: parsed and checked on a worker thread, so the event loop (and
        # with it every scan's verdict) never waits for a big file.
        body = await request.body()
        try:
            parsed = await asyncio.to_thread(model.model_validate_json, body)
        except ValidationError as exc:
            # Said as FastAPI says errors in a body it parsed itself.
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            raise RequestValidationError(errors) from exc
        rows = [r.model_dump() for r in parsed.rows]
        added = await guarded(
            store.import_rows(kind, rows, clock.now(), ADMIN_ACTOR), "import", kind=kind
        )
        for n, availability in enumerate(added, 1):
            publisher.publish(
                topics.availability(availability.shelf_id, availability.item_id),
                encode(availability),
                retain=True,
            )
            if n % 200 == 0:
                await asyncio.sleep(0)  # let the consumer in between slices
        return ImportOut(kind=kind, imported=len(rows))

    @router.post("/shelves/import", status_code=201)
    async def import_shelves(request: Request) -> ImportOut:
        return await _import("shelves", ShelfImport, request)

    @router.post("/items/import", status_code=201)
    async def import_items(request: Request) -> ImportOut:
        return await _import("items", ItemImport, request)

    @router.post("/members/import", status_code=201)
    async def import_members(request: Request) -> ImportOut:
        return await _import("members", MemberImport, request)

    return router
