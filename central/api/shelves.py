"""``/shelves``: add, list, rename and import shelves."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from broker.ids import ID_PATTERN
from central.api.deps import ADMIN, LibraryService
from central.api.edits import EditOut, diff
from central.api.imports import ImportOut, import_rows
from central.api.text import Text

router = APIRouter(prefix="/shelves", dependencies=ADMIN)


class ShelfIn(BaseModel):
    """A new shelf."""

    model_config = ConfigDict(extra="forbid")

    shelf_id: str = Field(pattern=ID_PATTERN, description="Shelf id, e.g. SHELF-A.")
    name: Text = Field(min_length=1, max_length=80, description="Where it is, for people.")


class ShelfEdit(BaseModel):
    """Changes to a shelf."""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=80, description="New name, for people.")


class ShelfOut(BaseModel):
    """A shelf and how many items live on it."""

    shelf_id: str
    name: str
    items: int


@router.post("", status_code=201)
async def add_shelf(body: ShelfIn, library: LibraryService) -> ShelfIn:
    """Add a shelf."""
    await library.add_shelf(body.shelf_id, body.name)
    return body


@router.get("")
async def list_shelves(library: LibraryService) -> list[ShelfOut]:
    """Every shelf and how many items it holds."""
    return [
        ShelfOut(shelf_id=r.shelf_id, name=r.name, items=r.items) for r in await library.shelves()
    ]


@router.patch("/{shelf_id}")
async def edit_shelf(shelf_id: str, body: ShelfEdit, library: LibraryService) -> EditOut:
    """Rename a shelf."""
    return diff(await library.edit_shelf(shelf_id, body.model_dump()))


@router.post("/import", status_code=201)
async def import_shelves(request: Request, library: LibraryService) -> ImportOut:
    """Add shelves from rows: all of them, or none."""
    return await import_rows(library, "shelves", ShelfIn, request)
