"""Admin API for fleet updates: publish kiosk releases, roll them out in stages, watch them.

The artifact download is the one open route here: kiosks have no admin token, and the
artifact proves itself (its signed hash), so serving it to anyone gives nothing away.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from broker.ids import is_id
from broker.messages import ReleaseVersion, Sha256Hex
from broker.release import check_artifact
from central.api.deps import ADMIN
from central.clock import Clock
from central.storage.releases import (
    ReleaseRefusedError,
    ReleaseRow,
    ReleaseWrites,
    RolloutRow,
    RolloutState,
)

log = logging.getLogger(__name__)

_ACTOR = r"^[A-Za-z0-9._@-]{1,64}$"
_MAX_ARTIFACT = 64 * 1024 * 1024


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Why(_In):
    """Who asks for a change, and why (both go into the audit log)."""

    reason: str = Field(min_length=3, max_length=500, description="Why, for the audit log.")
    actor: str = Field(default="api", pattern=_ACTOR, description="Who, for the audit log.")


class ReleaseIn(_In):
    """A release as an admin publishes it: the artifact and its signature."""

    version: ReleaseVersion = Field(description="The version the artifact was built as.")
    artifact: str = Field(max_length=_MAX_ARTIFACT * 4 // 3 + 4, description="The wheel, base64.")
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


def router(store: ReleaseWrites, clock: Clock, trusted: list[Ed25519PublicKey]) -> APIRouter:
    """``/releases`` and ``/rollouts`` for admins, each behind the admin token."""
    api = APIRouter(tags=["releases"], dependencies=ADMIN)

    @api.post("/releases", status_code=201)
    async def publish(release: ReleaseIn) -> ReleaseOut:
        try:
            artifact = base64.b64decode(release.artifact, validate=True)
        except binascii.Error as exc:
            raise HTTPException(422, "artifact: not base64") from exc
        if not artifact or len(artifact) > _MAX_ARTIFACT:
            raise HTTPException(422, f"artifact: 1 byte to {_MAX_ARTIFACT} bytes")
        sha256 = hashlib.sha256(artifact).hexdigest()
        if trusted:
            # Defence in depth: kiosks check too, but a release no kiosk would take never
            # reaches them, and a stolen admin token alone cannot publish one.
            why = check_artifact(
                artifact,
                version=release.version,
                sha256=sha256,
                signature=release.signature,
                trusted=trusted,
            )
            if why is not None:
                raise HTTPException(422, f"signature: {why.value}")
        row = ReleaseRow(
            release.version,
            sha256,
            len(artifact),
            release.signature,
            release.notes,
            release.actor,
            clock.now(),
        )
        try:
            stored = await store.add_release(row, artifact, release.actor, clock.now())
        except ReleaseRefusedError as exc:
            raise HTTPException(409, str(exc)) from exc
        return _release_out(stored)

    @api.get("/releases")
    async def list_releases() -> list[ReleaseOut]:
        return [_release_out(r) for r in await store.list_releases()]

    @api.post("/rollouts", status_code=201)
    async def start(rollout: RolloutIn) -> RolloutOut:
        if rollout.percent == 0 and not rollout.kiosks:
            raise HTTPException(422, "a rollout needs --percent or --kiosks")
        try:
            row = await store.start_rollout(
                rollout.version,
                percent=rollout.percent,
                kiosks=rollout.kiosks,
                abort_percent=rollout.abort_percent,
                abort_min=rollout.abort_min,
                reason=rollout.reason,
                actor=rollout.actor,
                now=clock.now(),
            )
        except ReleaseRefusedError as exc:
            raise HTTPException(409, str(exc)) from exc
        return _rollout_out(row)

    @api.get("/rollouts")
    async def list_rollouts() -> list[RolloutOut]:
        return [_rollout_out(r) for r in await store.list_rollouts()]

    @api.get("/rollouts/{rollout_id}")
    async def show(rollout_id: int) -> RolloutOut:
        row = await store.get_rollout(rollout_id)
        if row is None:
            raise HTTPException(404, f"no rollout {rollout_id}")
        out = _rollout_out(row)
        out.progress = [
            KioskUpdateOut(
                kiosk_id=k.kiosk_id,
                state=k.state,
                reason=k.reason,
                offers=k.offers,
                changed_at=k.changed_at,
            )
            for k in await store.rollout_kiosks(rollout_id)
        ]
        return out

    async def change(rollout_id: int, to: RolloutState, why: Why) -> RolloutOut:
        try:
            row = await store.change_rollout(
                rollout_id, to, reason=why.reason, actor=why.actor, now=clock.now()
            )
        except ReleaseRefusedError as exc:
            raise HTTPException(409, str(exc)) from exc
        return _rollout_out(row)

    @api.post("/rollouts/{rollout_id}/pause")
    async def pause(rollout_id: int, why: Why) -> RolloutOut:
        return await change(rollout_id, RolloutState.PAUSED, why)

    @api.post("/rollouts/{rollout_id}/resume")
    async def resume(rollout_id: int, why: Why) -> RolloutOut:
        return await change(rollout_id, RolloutState.RUNNING, why)

    @api.post("/rollouts/{rollout_id}/abort")
    async def abort(rollout_id: int, why: Why) -> RolloutOut:
        return await change(rollout_id, RolloutState.ABORTED, why)

    return api


def downloads(store: ReleaseWrites) -> APIRouter:
    """``GET /releases/{version}/artifact``, open: kiosks fetch what they were offered."""
    api = APIRouter(tags=["releases"])

    @api.get("/releases/{version}/artifact")
    async def artifact(version: str) -> Response:
        data = await store.release_artifact(version)
        if data is None:
            raise HTTPException(404, f"no release {version}")
        return Response(data, media_type="application/octet-stream")

    return api
