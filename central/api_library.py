"""Admin API for library data upkeep: edit and list shelves, items, members; reprint; import."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

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

# One import is one file; past this a file should be split (and it is a typo).
MAX_IMPORT_ROWS = 20_000
# New items' availability goes out this many messages at a time, this far apart.
_PUBLISH_SLICE = 100
_PUBLISH_PAUSE_S = 0.005


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


class ImportIn(_Edit):
    """An import's envelope; each row is checked against its kind's model (ShelfIn, ItemIn,
    MemberIn) a slice at a time."""

    rows: list[Any] = Field(max_length=MAX_IMPORT_ROWS, description="The new rows.")


class ImportOut(BaseModel):
    """How many rows one import added."""

    kind: str
    imported: int


# Rows validated per call: about a millisecond of GIL each, so the loop is never held long.
_VALIDATE_SLICE = 250


def _parse_import(row_model: type[BaseModel], body: bytes) -> list[dict[str, Any]]:
    """The rows of an import body ``{"rows": [...]}``, every bad one reported (422)."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "not JSON", "type": "json_invalid"}]
        ) from exc
    envelope = ImportIn.model_validate(data) if isinstance(data, dict) else None
    if envelope is None:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "expected an object", "type": "dict_type"}]
        )
    adapter: TypeAdapter[list[BaseModel]] = TypeAdapter(list[row_model])  # type: ignore[valid-type]  # a model class given at run time
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for start in range(0, len(envelope.rows), _VALIDATE_SLICE):
        try:
            part = adapter.validate_python(envelope.rows[start : start + _VALIDATE_SLICE])
        except ValidationError as exc:
            for e in exc.errors():
                errors.append(
                    {**e, "loc": ("body", "rows", start + int(e["loc"][0]), *e["loc"][1:])}
                )
            continue
        rows += [r.model_dump() for r in part]
        time.sleep(0)  # hand the GIL to the event loop between slices
    if errors:
        raise RequestValidationError(errors)
    return rows


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

    async def _import(kind: str, row_model: type[BaseModel], request: Request) -> ImportOut:
        # Up to 20,000 rows: parsed and checked on a worker thread in slices (pydantic holds
        # the GIL for a whole call), so the event loop and every scan's verdict keep going.
        rows = await asyncio.to_thread(_parse_import, row_model, await request.body())
        added = await guarded(
            store.import_rows(kind, rows, clock.now(), ADMIN_ACTOR), "import", kind=kind
        )
        for n, availability in enumerate(added, 1):
            publisher.publish(
                topics.availability(availability.shelf_id, availability.item_id),
                encode(availability),
                retain=True,
            )
            if n % _PUBLISH_SLICE == 0:
                # Verdicts leave on the same connection, behind whatever is queued: a
                # slice at a time keeps that queue (and a verdict's wait) short.
                await asyncio.sleep(_PUBLISH_PAUSE_S)
        return ImportOut(kind=kind, imported=len(rows))

    @router.post("/shelves/import", status_code=201)
    async def import_shelves(request: Request) -> ImportOut:
        return await _import("shelves", ShelfIn, request)

    @router.post("/items/import", status_code=201)
    async def import_items(request: Request) -> ImportOut:
        return await _import("items", ItemIn, request)

    @router.post("/members/import", status_code=201)
    async def import_members(request: Request) -> ImportOut:
        return await _import("members", MemberIn, request)

    return router
