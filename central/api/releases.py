"""``/releases`` and ``/rollouts``: publish kiosk releases, roll them out in stages, watch them.

The artifact download is the one open route here: kiosks have no admin token, and the
artifact proves itself (its signed hash), so serving it to anyone gives nothing away.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from broker.ids import is_id
from broker.messages import ReleaseVersion, Sha256Hex
from central.api.deps import ADMIN, UpdatesService
from central.services.fleet_updates import MAX_ARTIFACT
from central.storage.releases import (
    ReleaseRow,
    RolloutRow,
    RolloutState,
)

_ACTOR = r"^[A-Za-z0-9._@-]{1,64}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Why(_In):
    """Who asks for a change, and why (both go into the audit log)."""

    reason: str = Field(min_length=3, max_length=500, description="Why, for the audit log.")
    actor: str = Field(default="api", pattern=_ACTOR, description="Who, for the audit log.")


class ReleaseIn(_In):
    """A release as an admin publishes it: the artifact and its signature."""

    version: ReleaseVersion = Field(description="The version the artifact was built as.")
    artifact: str = Field(max_length=MAX_ARTIFACT * 4 // 3 + 4, description="The wheel, base64.")
    signature: str = Field(max_length=200, description="Base64 Ed25519 over version and hash.")
    notes: str = Field(default="", max_length=2000, description="What changed, for admins.")
    actor: str = Field(default="api", pattern=_ACTOR, description="Who, for the audit log.")


class ReleaseOut(BaseModel):
    """A published release."""

    version: str
    sha256: Sha256Hex
    size: int
    notes: str
    created_by: str
    created_at: datetime


class RolloutIn(Why):
    """Start rolling a release out: to an allow-list, a share of the fleet, or both."""

    version: ReleaseVersion
    percent: int = Field(default=0, ge=0, le=100, description="Share of the other kiosks.")
    kiosks: list[str] = Field(default=[], max_length=10_000, description="Kiosks first.")
    abort_percent: int = Field(
        default=20, ge=1, le=100, description="Halt when this share of finished kiosks failed."
    )
    abort_min: int = Field(
        default=1, ge=1, le=100_000, description="...once at least this many have finished."
    )

    @field_validator("kiosks")
    @classmethod
    def _ids(cls, kiosks: list[str]) -> list[str]:
        bad = [k for k in kiosks if not is_id(k)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a kiosk id")
        return kiosks


class KioskUpdateOut(BaseModel):
    """One kiosk's part in a rollout."""

    kiosk_id: str
    state: str
    reason: str | None
    offers: int
    changed_at: datetime


class RolloutOut(BaseModel):
    """A rollout and, when asked for one, its kiosks."""

    rollout_id: int
    version: str
    state: RolloutState
    percent: int
    kiosks: list[str]
    abort_percent: int
    abort_min: int
    reason: str
    created_by: str
    created_at: datetime
    changed_at: datetime
    halt_reason: str | None
    progress: list[KioskUpdateOut] = Field(default=[], description="Per kiosk, by id.")


def _release_out(row: ReleaseRow) -> ReleaseOut:
    return ReleaseOut(
        version=row.version,
        sha256=row.sha256,
        size=row.size,
        notes=row.notes,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _rollout_out(row: RolloutRow) -> RolloutOut:
    return RolloutOut(
        rollout_id=row.rollout_id,
        version=row.version,
        state=row.state,
        percent=row.percent,
        kiosks=list(row.kiosks),
        abort_percent=row.abort_percent,
        abort_min=row.abort_min,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
        changed_at=row.changed_at,
        halt_reason=row.halt_reason,
    )


router = APIRouter(tags=["releases"], dependencies=ADMIN)
# The one open route here: kiosks fetch what they were offered, without an admin token.
downloads = APIRouter(tags=["releases"])


@router.post("/releases", status_code=201)
async def publish(release: ReleaseIn, updates: UpdatesService) -> ReleaseOut:
    """Publish a signed release."""
    return _release_out(
        await updates.publish(
            release.version, release.artifact, release.signature, release.notes, release.actor
        )
    )


@router.get("/releases")
async def list_releases(updates: UpdatesService) -> list[ReleaseOut]:
    """Every release."""
    return [_release_out(r) for r in await updates.list_releases()]


@router.post("/rollouts", status_code=201)
async def start(rollout: RolloutIn, updates: UpdatesService) -> RolloutOut:
    """Start rolling a release out."""
    return _rollout_out(
        await updates.start(
            rollout.version,
            percent=rollout.percent,
            kiosks=rollout.kiosks,
            abort_percent=rollout.abort_percent,
            abort_min=rollout.abort_min,
            reason=rollout.reason,
            actor=rollout.actor,
        )
    )


@router.get("/rollouts")
async def list_rollouts(updates: UpdatesService) -> list[RolloutOut]:
    """Every rollout."""
    return [_rollout_out(r) for r in await updates.list_rollouts()]


@router.get("/rollouts/{rollout_id}")
async def show(rollout_id: int, updates: UpdatesService) -> RolloutOut:
    """One rollout with each kiosk's progress."""
    row, kiosks = await updates.rollout(rollout_id)
    out = _rollout_out(row)
    out.progress = [
        KioskUpdateOut(
            kiosk_id=k.kiosk_id,
            state=k.state,
            reason=k.reason,
            offers=k.offers,
            changed_at=k.changed_at,
        )
        for k in kiosks
    ]
    return out


@router.post("/rollouts/{rollout_id}/pause")
async def pause(rollout_id: int, why: Why, updates: UpdatesService) -> RolloutOut:
    """Stop offering it; kiosks mid-update finish."""
    return _rollout_out(
        await updates.change(rollout_id, RolloutState.PAUSED, why.reason, why.actor)
    )


@router.post("/rollouts/{rollout_id}/resume")
async def resume(rollout_id: int, why: Why, updates: UpdatesService) -> RolloutOut:
    """Offer it again."""
    return _rollout_out(
        await updates.change(rollout_id, RolloutState.RUNNING, why.reason, why.actor)
    )


@router.post("/rollouts/{rollout_id}/abort")
async def abort(rollout_id: int, why: Why, updates: UpdatesService) -> RolloutOut:
    """Stop it for good."""
    return _rollout_out(
        await updates.change(rollout_id, RolloutState.ABORTED, why.reason, why.actor)
    )


@downloads.get("/releases/{version}/artifact")
async def artifact(version: str, updates: UpdatesService) -> Response:
    """A release's artifact (it proves itself by its signed hash)."""
    return Response(await updates.artifact(version), media_type="application/octet-stream")
