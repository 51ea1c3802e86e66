"""``/policies``: loan policies per category, training records, agreements, settings."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from broker.ids import ID_PATTERN
from central.api.deps import ADMIN, CirculationService
from central.api.text import Document
from central.services.circulation import Category, Settings

router = APIRouter(prefix="/policies", dependencies=ADMIN)


class Filing(BaseModel):
    """Which category an item is lent under."""

    model_config = ConfigDict(extra="forbid")

    category: str | None = Field(description="A category's name; null: the default policy.")


class Training(BaseModel):
    """A training record."""

    model_config = ConfigDict(extra="forbid")

    member_id: str = Field(pattern=ID_PATTERN, description="Who was trained.")
    category: str = Field(min_length=1, max_length=40, description="For which category.")


class AgreementIn(BaseModel):
    """A new lending agreement."""

    model_config = ConfigDict(extra="forbid")

    text: Document = Field(min_length=1, max_length=20_000, description="Its full text.")


class Acceptance(BaseModel):
    """A member accepting the current agreement."""

    model_config = ConfigDict(extra="forbid")

    member_id: str = Field(pattern=ID_PATTERN, description="Who accepted it.")


class Version(BaseModel):
    """An agreement's version."""

    version: int


@router.get("/categories")
async def categories(circulation: CirculationService) -> list[Category]:
    """Every category's loan policy."""
    return await circulation.categories()


@router.put("/categories", status_code=204)
async def put_category(category: Category, circulation: CirculationService) -> Response:
    """Create or replace a category's policy."""
    await circulation.put_category(category)
    return Response(status_code=204)


@router.put("/items/{item_id}", status_code=204)
async def file_item(item_id: str, filing: Filing, circulation: CirculationService) -> Response:
    """Lend an item under a category's policy."""
    await circulation.file_item(item_id, filing.category)
    return Response(status_code=204)


@router.post("/training", status_code=204)
async def record_training(training: Training, circulation: CirculationService) -> Response:
    """Record that a member is trained for a category."""
    await circulation.record_training(training.member_id, training.category)
    return Response(status_code=204)


@router.post("/agreements", status_code=201)
async def publish_agreement(agreement: AgreementIn, circulation: CirculationService) -> Version:
    """Make a new lending agreement current (members must accept it again)."""
    return Version(version=await circulation.publish_agreement(agreement.text))


@router.post("/agreements/accept")
async def accept_agreement(acceptance: Acceptance, circulation: CirculationService) -> Version:
    """Record a member's acceptance of the current agreement."""
    return Version(version=await circulation.accept_agreement(acceptance.member_id))


@router.get("/settings")
async def settings(circulation: CirculationService) -> Settings:
    """The library's circulation settings."""
    return await circulation.settings()


@router.put("/settings", status_code=204)
async def put_settings(settings: Settings, circulation: CirculationService) -> Response:
    """Replace the library's circulation settings."""
    await circulation.put_settings(settings)
    return Response(status_code=204)
