"""``/kiosks``: add kiosks, watch their presence and health, configure them, identify one."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from broker.ids import ID_PATTERN
from broker.messages import KioskConfig
from central.api.deps import ADMIN, KiosksService
from central.services.kiosks import ConfigPatch, IdentifyOut, KioskDetail, KioskView

router = APIRouter(prefix="/kiosks", dependencies=ADMIN)


class KioskIn(BaseModel):
    """A kiosk to enrol."""

    model_config = ConfigDict(extra="forbid")

    kiosk_id: str = Field(pattern=ID_PATTERN, description="Kiosk id (its MQTT identity).")
    shelf_id: str = Field(pattern=ID_PATTERN, description="The shelf it serves.")
    session_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="Idle seconds before a session ends."
    )


@router.post("", status_code=201)
async def add_kiosk(body: KioskIn, kiosks: KiosksService) -> KioskConfig:
    """Add a kiosk to a shelf."""
    return await kiosks.add(body.kiosk_id, body.shelf_id, body.session_timeout_s)


@router.get("")
async def list_kiosks(kiosks: KiosksService) -> list[KioskView]:
    """Every kiosk: presence, health, versions, blocks."""
    return await kiosks.views()


@router.get("/{kiosk_id}")
async def show_kiosk(kiosk_id: str, kiosks: KiosksService) -> KioskDetail:
    """One kiosk with its whole configuration."""
    return await kiosks.detail(kiosk_id)


# Unset settings are left out, as on the wire: what is shown is what central sets.
@router.patch("/{kiosk_id}/config", response_model_exclude_none=True)
async def configure(kiosk_id: str, patch: ConfigPatch, kiosks: KiosksService) -> KioskConfig:
    """Change a kiosk's configuration."""
    return await kiosks.configure(kiosk_id, patch)


@router.post("/{kiosk_id}/identify", status_code=202)
async def identify(kiosk_id: str, kiosks: KiosksService) -> IdentifyOut:
    """Make a kiosk flash and beep."""
    return await kiosks.identify(kiosk_id)
