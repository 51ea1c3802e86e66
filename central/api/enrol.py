"""Joining and leaving the fleet: enrol, retire, enrolment codes, and the open `/enrol/claim`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from broker.ids import ID_PATTERN
from central.api.deps import ADMIN, EnrolmentService
from central.api.text import Text
from central.services.enrolment import EnrolCode

MAX_CODE = 256

router = APIRouter(dependencies=ADMIN)
# Open: a new kiosk has no admin token, only the enrolment QR it was shown.
claims = APIRouter()


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrolIn(_In):
    """Enrol a kiosk (or re-enrol it, which rotates its broker password)."""

    shelf_id: str = Field(pattern=ID_PATTERN, description="The shelf it serves.")
    session_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="Idle seconds before a session ends."
    )
    rotate: bool = Field(default=False, description="Re-enrol: new password, old one refused.")


class EnrolCodeIn(_In):
    """A one-time enrolment QR for a kiosk not enrolled yet."""

    kiosk_id: str = Field(pattern=ID_PATTERN, description="The id the new kiosk will take.")
    shelf_id: str = Field(pattern=ID_PATTERN, description="The shelf it will serve.")
    ttl_s: int = Field(default=900, ge=60, le=86_400, description="How long the code works.")


class ClaimIn(_In):
    """A kiosk's claim: the enrolment QR it saw."""

    code: Text = Field(min_length=1, max_length=MAX_CODE, description="The QR text.")


class RetireIn(_In):
    """Why a kiosk is leaving the fleet."""

    reason: Text = Field(min_length=1, max_length=200, description="For the audit log.")


@router.post("/kiosks/{kiosk_id}/enrol", status_code=201)
async def enrol(kiosk_id: str, body: EnrolIn, enrolment: EnrolmentService) -> dict[str, Any]:
    """Enrol a kiosk (or rotate its password); its first-boot bundle."""
    return await enrolment.enrol(
        kiosk_id, body.shelf_id, body.session_timeout_s, rotate=body.rotate
    )


@router.post("/kiosks/{kiosk_id}/retire")
async def retire(kiosk_id: str, body: RetireIn, enrolment: EnrolmentService) -> dict[str, Any]:
    """Take a kiosk out of the fleet."""
    await enrolment.retire(kiosk_id, body.reason)
    return {"kiosk_id": kiosk_id, "retired": True}


@router.post("/enrolments", status_code=201)
async def enrol_code(body: EnrolCodeIn, enrolment: EnrolmentService) -> EnrolCode:
    """A one-time enrolment QR for a new kiosk."""
    return await enrolment.enrolment_code(body.kiosk_id, body.shelf_id, body.ttl_s)


@claims.post("/enrol/claim", status_code=201)
async def claim(body: ClaimIn, request: Request, enrolment: EnrolmentService) -> dict[str, Any]:
    """A kiosk claims the enrolment QR it saw; its bundle."""
    caller = request.client.host if request.client is not None else "?"
    return await enrolment.claim(body.code, caller)
