"""Admin endpoints for security actions: key rotation, invalidating passes, blocking kiosks."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from central import security
from central.api.deps import ADMIN
from central.api.text import Text
from central.clock import Clock
from central.keys import KeyFile
from central.storage.base import AuditEntry, Store

ADMIN_ACTOR = "admin:api"


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


# A hand block with no end given lasts this long: "until an admin lifts it", in effect.
_HAND_BLOCK = timedelta(days=365)


def security_router(store: Store, clock: Clock, keys: KeyFile | None) -> APIRouter:
    """The security endpoints, each behind the admin token."""
    router = APIRouter(dependencies=ADMIN)

    @router.post("/passes/invalidate")
    async def invalidate_passes(body: InvalidateIn) -> InvalidateOut:
        count = await security.invalidate_all_passes(store, clock.now(), ADMIN_ACTOR, body.reason)
        return InvalidateOut(invalidated=count)

    @router.post("/kiosks/{kiosk_id}/block")
    async def block_kiosk(kiosk_id: str, body: BlockIn) -> BlockOut:
        now = clock.now()
        until = now + (_HAND_BLOCK if body.minutes is None else timedelta(minutes=body.minutes))
        found = await security.set_kiosk_block(
            store, kiosk_id, until, now, ADMIN_ACTOR, body.reason
        )
        if not found:
            raise HTTPException(404, f"no kiosk {kiosk_id}")
        return BlockOut(kiosk_id=kiosk_id, blocked_until=until)

    @router.post("/kiosks/{kiosk_id}/unblock")
    async def unblock_kiosk(kiosk_id: str, body: UnblockIn) -> BlockOut:
        now = clock.now()
        if not await security.set_kiosk_block(store, kiosk_id, None, now, ADMIN_ACTOR, body.reason):
            raise HTTPException(404, f"no kiosk {kiosk_id}")
        return BlockOut(kiosk_id=kiosk_id, blocked_until=None)

    def ring() -> KeyFile:
        if keys is None:
            raise HTTPException(409, "this central runs with a fixed key ring")
        return keys

    @router.post("/keys/rotate")
    async def rotate_keys() -> RotationOut:
        now = clock.now()
        # fsync and rename: off the event loop.
        rotation = await asyncio.to_thread(ring().rotate, now)
        async with store.write() as tx:
            await tx.audit(
                AuditEntry(
                    now,
                    ADMIN_ACTOR,
                    "key.rotate",
                    detail={
                        "active": rotation.active,
                        "previous": rotation.previous,
                        "previous_valid_until": rotation.previous_valid_until.isoformat(),
                    },
                )
            )
        return RotationOut(
            active=rotation.active,
            previous=rotation.previous,
            previous_valid_until=rotation.previous_valid_until,
        )

    @router.get("/keys")
    async def list_keys() -> list[dict[str, Any]]:
        return ring().describe()

    return router
