"""``/members``: add, list, edit and import members; issue their passes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from broker.ids import ID_PATTERN
from central.api.deps import ADMIN, BrowseService, LibraryService
from central.api.edits import EditOut, diff
from central.api.imports import ImportOut, import_rows
from central.api.pages import PageOut, page_out
from central.api.text import Text
from central.services.library import IssuedPass
from central.storage.base import MemberRow

router = APIRouter(prefix="/members", dependencies=ADMIN)


class MemberIn(BaseModel):
    """A new member."""

    model_config = ConfigDict(extra="forbid")

    member_id: str = Field(pattern=ID_PATTERN, description="Membership number.")
    name: Text = Field(min_length=1, max_length=80, description="Name used to greet them.")
    checkout_limit: int = Field(default=5, ge=0, le=100, description="Most items held.")


class MemberEdit(BaseModel):
    """Changes to a member; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=80, description="New name.")
    suspended: bool | None = Field(default=None, description="Refuse their passes while true.")
    checkout_limit: int | None = Field(default=None, ge=0, le=100, description="Most items held.")


class MemberOut(BaseModel):
    """A member as the admin sees them."""

    member_id: str
    name: str
    suspended: bool
    checkout_limit: int


class PassIn(BaseModel):
    """A pass request."""

    model_config = ConfigDict(extra="forbid")

    ttl_s: int | None = Field(
        default=None, ge=60, le=86_400, description="Lifetime; the central default if unset."
    )


def _member(row: MemberRow) -> MemberOut:
    return MemberOut(
        member_id=row.member_id,
        name=row.name,
        suspended=row.suspended,
        checkout_limit=row.checkout_limit,
    )


@router.post("", status_code=201)
async def add_member(body: MemberIn, library: LibraryService) -> MemberIn:
    """Add a member."""
    await library.add_member(body.member_id, body.name, body.checkout_limit)
    return body


@router.get("")
async def list_members(library: LibraryService) -> list[MemberOut]:
    """Every member."""
    return [_member(r) for r in await library.members()]


@router.get("/search")
async def search_members(browse: BrowseService, q: str = "", page_no: int = 1) -> PageOut:
    """A page of 50 members whose number or name holds ``q``, with items on loan."""
    return page_out(await browse.members(q[:80], page_no))


@router.get("/{member_id}")
async def get_member(member_id: str, library: LibraryService) -> MemberOut:
    """One member."""
    return _member(await library.member(member_id))


@router.patch("/{member_id}")
async def edit_member(member_id: str, body: MemberEdit, library: LibraryService) -> EditOut:
    """Rename a member, change their limit, suspend or reinstate them."""
    return diff(await library.edit_member(member_id, body.model_dump(exclude_none=True)))


@router.post("/{member_id}/passes", status_code=201)
async def issue_pass(member_id: str, body: PassIn, library: LibraryService) -> IssuedPass:
    """A single-use pass (refused for a suspended member)."""
    return await library.issue_pass(member_id, body.ttl_s)


@router.post("/import", status_code=201)
async def import_members(request: Request, library: LibraryService) -> ImportOut:
    """Add members from rows: all of them, or none."""
    return await import_rows(library, "members", MemberIn, request)
