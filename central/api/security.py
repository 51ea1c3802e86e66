"""Security actions over HTTP: key rotation, invalidating passes, blocking kiosks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from central.api.deps import ADMIN, SecurityService
from central.api.text import Text


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InvalidateIn(_In):
    """Why every outstanding pass is being invalidated."""

    reason: Text = Field(min_length=1, max_length=200, description="Why, for the audit log.")


class InvalidateOut(BaseModel):
    """How many passes were invalidated."""

    invalidated: int = Field(description="Passes that were neither used nor expired.")


class BlockIn(_In):
    """A hand block of one kiosk."""

    reason: Text = Field(min_length=1, max_length=200, description="Why, for the audit log.")
    minutes: int | None = Field(
        default=None, ge=1, le=525_600, description="How long; a year if unset."
    )


class UnblockIn(_In):
    """Lifting a kiosk's block."""

    reason: Text = Field(
        default="unblocked by admin", min_length=1, max_length=200, description="Why."
    )


class BlockOut(BaseModel):
    """A kiosk's block as it stands."""

    kiosk_id: str = Field(description="The kiosk.")
    blocked_until: datetime | None = Field(description="Refused until then; None: not blocked.")


class RotationOut(BaseModel):
    """The key ids a rotation touched (never key material)."""

    active: str = Field(description="The key id new codes are signed with.")
    previous: str = Field(description="The key id retired by this rotation.")
    previous_valid_until: datetime = Field(description="When codes under it stop verifying.")


router = APIRouter(dependencies=ADMIN)


@router.post("/passes/invalidate")
async def invalidate_passes(body: InvalidateIn, actions: SecurityService) -> InvalidateOut:
    """Invalidate every outstanding pass."""
    return InvalidateOut(invalidated=await actions.invalidate_passes(body.reason))


@router.post("/kiosks/{kiosk_id}/block")
async def block_kiosk(kiosk_id: str, body: BlockIn, actions: SecurityService) -> BlockOut:
    """Refuse a kiosk's scans for a while."""
    until = await actions.block_kiosk(kiosk_id, body.minutes, body.reason)
    return BlockOut(kiosk_id=kiosk_id, blocked_until=until)


@router.post("/kiosks/{kiosk_id}/unblock")
async def unblock_kiosk(kiosk_id: str, body: UnblockIn, actions: SecurityService) -> BlockOut:
    """Lift a kiosk's block."""
    await actions.unblock_kiosk(kiosk_id, body.reason)
    return BlockOut(kiosk_id=kiosk_id, blocked_until=None)


@router.post("/keys/rotate")
async def rotate_keys(actions: SecurityService) -> RotationOut:
    """Sign new codes with a new key."""
    rotation = await actions.rotate_keys()
    return RotationOut(
        active=rotation.active,
        previous=rotation.previous,
        previous_valid_until=rotation.previous_valid_until,
    )


@router.get("/keys")
async def list_keys(actions: SecurityService) -> list[dict[str, Any]]:
    """The key ids and their state."""
    return actions.key_ids()
