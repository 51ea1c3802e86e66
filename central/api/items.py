"""``/items``: add, list, edit and import items; their label codes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from broker.ids import ID_PATTERN
from broker.messages import Availability
from central.api.deps import ADMIN, BrowseService, LibraryService
from central.api.edits import EditOut, diff
from central.api.imports import ImportOut, import_rows
from central.api.pages import PageOut, page_out
from central.api.text import Text
from central.services.library import Label
from central.storage.base import ItemRow

router = APIRouter(prefix="/items", dependencies=ADMIN)


class ItemIn(BaseModel):
    """A new item."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(pattern=ID_PATTERN, description="Item id printed on its label.")
    shelf_id: str = Field(pattern=ID_PATTERN, description="The shelf it lives on.")
    name: Text = Field(min_length=1, max_length=80, description="What it is.")
    loan_days: int = Field(default=14, ge=1, le=365, description="Loan period.")


class ItemEdit(BaseModel):
    """Changes to an item; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=80, description="New name.")
    shelf_id: str | None = Field(default=None, pattern=ID_PATTERN, description="Move to shelf.")
    loan_days: int | None = Field(default=None, ge=1, le=365, description="New loan period.")
    state: Literal["available", "maintenance", "retired"] | None = Field(
        default=None, description="Lendable, away for repair, or gone for good."
    )


class ItemOut(BaseModel):
    """An item as the admin sees it."""

    item_id: str
    shelf_id: str
    name: str
    state: str
    loan_days: int
    label_version: int


def _item(row: ItemRow) -> ItemOut:
    return ItemOut(
        item_id=row.item_id,
        shelf_id=row.shelf_id,
        name=row.name,
        state=row.state,
        loan_days=row.loan_days,
        label_version=row.label_version,
    )


@router.post("", status_code=201)
async def add_item(body: ItemIn, library: LibraryService) -> Availability:
    """Add an item; its shelf's kiosks hear it is available."""
    return await library.add_item(body.item_id, body.shelf_id, body.name, body.loan_days)


@router.get("")
async def list_items(library: LibraryService) -> list[Availability]:
    """Every item and where it stands."""
    return list(await library.availability())


@router.get("/search")
async def search_items(
    browse: BrowseService, q: str = "", shelf: str = "", page_no: int = 1
) -> PageOut:
    """A page of 50 items whose id or name holds ``q``, with who has each until when."""
    return page_out(await browse.items(q[:80], shelf[:32], page_no))


@router.get("/{item_id}")
async def get_item(item_id: str, library: LibraryService) -> ItemOut:
    """One item."""
    return _item(await library.item(item_id))


@router.patch("/{item_id}")
async def edit_item(item_id: str, body: ItemEdit, library: LibraryService) -> EditOut:
    """Rename, move, change the loan period or the state of an item."""
    return diff(await library.edit_item(item_id, body.model_dump(exclude_none=True)))


@router.get("/{item_id}/label")
async def label(item_id: str, library: LibraryService) -> Label:
    """The item's current label code."""
    return await library.label(item_id)


@router.post("/{item_id}/label")
async def reprint_label(item_id: str, library: LibraryService) -> Label:
    """A new label version; the old label stops working."""
    return await library.reprint_label(item_id)


@router.post("/import", status_code=201)
async def import_items(request: Request, library: LibraryService) -> ImportOut:
    """Add items from rows: all of them, or none."""
    return await import_rows(library, "items", ItemIn, request)
