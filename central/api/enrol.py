"""Admin API for the fleet's membership: enrol (bundle), enrolment QR codes, claims, retire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from broker import auth, topics
from broker.bundle import EnrolmentBundle
from broker.ids import ID_PATTERN, is_id
from broker.messages import Reason, encode
from central.api.claims import ClaimGate
from central.api.deps import ADMIN
from central.api.guard import HttpRefusal
from central.api.text import Text
from central.clock import Clock
from central.consumer import Publisher
from central.dynsec import BrokerControlError
from central.errors import StorageError
from central.fleet import BrokerAccounts
from central.storage.base import Store
from central.storage.fleet import FleetWrites
from central.tokens import Enrolment, TokenSigner, fingerprint, new_id

ADMIN_ACTOR = "admin:api"
MAX_CODE = 256


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


class EnrolCodeOut(BaseModel):
    """The enrolment QR's text and what it will enrol."""

    claim_id: str
    kiosk_id: str
    shelf_id: str
    code: str
    expires_at: datetime


class ClaimIn(_In):
    """A kiosk's claim: the enrolment QR it saw."""

    code: Text = Field(min_length=1, max_length=MAX_CODE, description="The QR text.")


class RetireIn(_In):
    """Why a kiosk is leaving the fleet."""

    reason: Text = Field(min_length=1, max_length=200, description="For the audit log.")


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """What goes into every bundle: where kiosks find the broker and the CA to trust."""

    host: str
    port: int
    ca_pem: str | None


def enrol_routes(
    store: Store,
    fleet: FleetWrites,
    signer: TokenSigner,
    clock: Clock,
    publisher: Publisher,
    accounts: BrokerAccounts,
    broker: BrokerAddress,
    claim_gate: ClaimGate | None = None,
) -> tuple[APIRouter, APIRouter]:
    """The admin routes (behind the admin token) and the kiosks' claim route (open)."""
    admin = APIRouter(dependencies=ADMIN)
    public = APIRouter()
    gate = claim_gate or ClaimGate(store, clock)

    async def bundle_for(kiosk_id: str, password: str) -> EnrolmentBundle:
        config = next((c for c in await store.kiosk_configs() if c.kiosk_id == kiosk_id), None)
        if config is None:
            raise HTTPException(404, f"no kiosk {kiosk_id}")
        # Retained config first, so the kiosk finds it the moment it connects.
        publisher.publish(topics.config(kiosk_id), encode(config), retain=True)
        return EnrolmentBundle(
            kiosk_id=kiosk_id,
            shelf_id=config.shelf_id,
            mqtt_host=broker.host,
            mqtt_port=broker.port,
            ca_pem=broker.ca_pem,
            mqtt_password=SecretStr(password),
            config=config,
        )

    @admin.post("/kiosks/{kiosk_id}/enrol", status_code=201)
    async def enrol(kiosk_id: str, body: EnrolIn) -> dict[str, Any]:
        if not is_id(kiosk_id):
            raise HTTPException(422, f"{kiosk_id!r} is not a valid kiosk id")
        password = auth.new_password()
        try:
            await fleet.enrol_kiosk(
                kiosk_id,
                body.shelf_id,
                auth.hash_password(password),
                clock.now(),
                ADMIN_ACTOR,
                session_timeout_s=body.session_timeout_s,
                rotate=body.rotate,
            )
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        except StorageError as exc:
            raise HTTPException(409, str(exc)) from exc
        await _push(accounts, {kiosk_id: password})
        return _reveal(await bundle_for(kiosk_id, password))

    @admin.post("/kiosks/{kiosk_id}/retire")
    async def retire(kiosk_id: str, body: RetireIn) -> dict[str, Any]:
        try:
            await fleet.retire_kiosk(kiosk_id, clock.now(), ADMIN_ACTOR, body.reason)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        except StorageError as exc:
            raise HTTPException(409, str(exc)) from exc
        await _push(accounts, {})
        # Clear its retained config: nobody should find a retired kiosk's settings.
        publisher.publish(topics.config(kiosk_id), b"", retain=True)
        return {"kiosk_id": kiosk_id, "retired": True}

    @admin.post("/enrolments", status_code=201)
    async def enrol_code(body: EnrolCodeIn) -> EnrolCodeOut:
        now = clock.now()
        claim_id = new_id()
        expires_at = (now + timedelta(seconds=body.ttl_s)).replace(microsecond=0)
        try:
            await fleet.issue_enrolment(
                claim_id, body.kiosk_id, body.shelf_id, now, expires_at, ADMIN_ACTOR
            )
        except StorageError as exc:
            raise HTTPException(409, str(exc)) from exc
        return EnrolCodeOut(
            claim_id=claim_id,
            kiosk_id=body.kiosk_id,
            shelf_id=body.shelf_id,
            code=signer.enrolment(claim_id, body.shelf_id, expires_at),
            expires_at=expires_at,
        )

    @public.post("/enrol/claim", status_code=201)
    async def claim(body: ClaimIn, request: Request) -> dict[str, Any]:
        caller = request.client.host if request.client is not None else "?"
        if not gate.admit(caller):
            await gate.refused(caller, HttpRefusal.RATE_LIMITED.value)
            raise HTTPException(
                429, {"reason": HttpRefusal.RATE_LIMITED.value}, headers={"Retry-After": "10"}
            )
        now = clock.now()
        token = signer.verify(body.code, now)
        actor = f"claim:{fingerprint(body.code)}"
        if not isinstance(token, Enrolment):
            reason = token if isinstance(token, Reason) else Reason.UNKNOWN_CODE
            # Counted, and written as one audit row per window: never a row per attempt.
            await gate.refused(caller, reason.value)
            raise HTTPException(403, {"reason": reason.value})
        password = auth.new_password()
        try:
            outcome = await fleet.claim_enrolment(
                token.claim_id, auth.hash_password(password), now, actor
            )
        except StorageError as exc:
            raise HTTPException(409, str(exc)) from exc
        if outcome.refusal is not None:
            raise HTTPException(403, {"reason": outcome.refusal.value})
        await _push(accounts, {outcome.kiosk_id: password})
        return _reveal(await bundle_for(outcome.kiosk_id, password))

    return admin, public


async def _push(accounts: BrokerAccounts, passwords: dict[str, str]) -> None:
    # Recorded but not confirmed by the broker: say so, rather than hand out a bundle
    # whose password the broker does not know (re-enrolling with --rotate repairs it).
    try:
        await accounts.sync(passwords=passwords)
    except BrokerControlError as exc:
        raise HTTPException(503, f"recorded, but the broker did not confirm it: {exc}") from exc


def _reveal(bundle: EnrolmentBundle) -> dict[str, Any]:
    # JSON mode writes the password in clear: this response is the one place it goes.
    out: dict[str, Any] = bundle.model_dump(mode="json")
    return out
