"""The admin HTTP API (FastAPI): library data, passes, labels, fleet presence, audit."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from broker import topics
from broker.ids import ID_PATTERN
from broker.messages import Availability, KioskConfig, KioskState, Reason, encode
from central import api_guard, rollout
from central.api_audit import audit_router
from central.api_claims import ClaimGate
from central.api_enrol import BrokerAddress, enrol_routes
from central.api_fleet import fleet_router
from central.api_loans import loans_router
from central.api_security import security_router
from central.api_text import Text
from central.clock import Clock
from central.consumer import Consumer, Publisher
from central.errors import StorageError
from central.fleet import BrokerAccounts
from central.keys import KeyFile
from central.storage.base import Store
from central.storage.fleet import FleetWrites
from central.tokens import TokenSigner, new_id

ADMIN_ACTOR = "admin:api"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShelfIn(_In):
    """A new shelf."""

    shelf_id: str = Field(pattern=ID_PATTERN, description="Shelf id, e.g. SHELF-A.")
    name: Text = Field(min_length=1, max_length=80, description="Where it is, for people.")


class ItemIn(_In):
    """A new item."""

    item_id: str = Field(pattern=ID_PATTERN, description="Item id printed on its label.")
    shelf_id: str = Field(pattern=ID_PATTERN, description="The shelf it lives on.")
    name: Text = Field(min_length=1, max_length=80, description="What it is.")
    loan_days: int = Field(default=14, ge=1, le=365, description="Loan period.")


class MemberIn(_In):
    """A new member."""

    member_id: str = Field(pattern=ID_PATTERN, description="Membership number.")
    name: Text = Field(min_length=1, max_length=80, description="Name used to greet them.")
    checkout_limit: int = Field(default=5, ge=0, le=100, description="Most items held.")


class KioskIn(_In):
    """A kiosk to enrol."""

    kiosk_id: str = Field(pattern=ID_PATTERN, description="Kiosk id (its MQTT identity).")
    shelf_id: str = Field(pattern=ID_PATTERN, description="The shelf it serves.")
    session_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="Idle seconds before a session ends."
    )


class PassIn(_In):
    """A pass request."""

    ttl_s: int | None = Field(
        default=None, ge=60, le=86_400, description="Lifetime; the central default if unset."
    )


class PassOut(BaseModel):
    """An issued pass."""

    pass_id: str
    member_id: str
    code: str
    expires_at: datetime


class LabelOut(BaseModel):
    """An item's current label code."""

    item_id: str
    version: int
    code: str


def create_app(
    store: Store,
    signer: TokenSigner,
    clock: Clock,
    publisher: Publisher,
    consumer: Consumer,
    *,
    admin_token: str,
    pass_ttl_s: int,
    fleet: FleetWrites | None = None,
    accounts: BrokerAccounts | None = None,
    broker_address: BrokerAddress | None = None,
    routers: Sequence[APIRouter] = (),
    open_routers: Sequence[APIRouter] = (),
    keys: KeyFile | None = None,
) -> FastAPI:
    """The admin API bound to one central instance's store and broker link.

    ``routers`` (other areas' endpoints) are mounted behind the admin token,
    ``open_routers`` (probes) without it.
    """
    # No /docs, /redoc or /openapi.json: every route but /health and /ready needs the token.
    claims = ClaimGate(store, clock)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await claims.close()  # the last window's tally of refused claims

    app = FastAPI(
        title="CommunityShare central admin API",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    # Body size, control characters and error answers, before the token is even looked at.
    api_guard.install(app, consumer.metrics.registry)

    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        expected = f"Bearer {admin_token}"
        if authorization is None or not hmac.compare_digest(authorization, expected):
            raise HTTPException(401, "admin token required", headers={"WWW-Authenticate": "Bearer"})

    auth = [Depends(authorised)]
    if fleet is not None and accounts is not None and broker_address is not None:
        for router in enrol_routes(
            store, fleet, signer, clock, publisher, accounts, broker_address, auth, claims
        ):
            app.include_router(router)
    app.include_router(security_router(store, clock, keys, auth=auth))
    app.include_router(
        fleet_router(store, clock, publisher, consumer, actor=ADMIN_ACTOR), dependencies=auth
    )
    app.include_router(audit_router(store), dependencies=auth)
    app.include_router(loans_router(store, clock), dependencies=auth)

    async def guarded(action: Any) -> None:
        try:
            await action
        except StorageError as exc:
            raise HTTPException(409, str(exc)) from exc

    from central.api_library import library_router  # it imports this module's models

    app.include_router(library_router(store, signer, clock, publisher), dependencies=auth)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "queue_depth": consumer.depth}

    @app.get("/metrics", dependencies=auth)
    async def metrics() -> Response:
        # Gauges are read at scrape time; counters move as scans are decided.
        consumer.metrics.queue_depth.set(consumer.depth)
        consumer.metrics.overdue_items.set(len(await store.overdue_loans(clock.now())))
        consumer.metrics.kiosks_connected.set(
            sum(1 for s in consumer.presence.values() if s.state is KioskState.ONLINE)
        )
        consumer.metrics.fleet(consumer.presence, [c.kiosk_id for c in await store.kiosk_configs()])
        return Response(consumer.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/stats", dependencies=auth)
    async def stats() -> dict[str, Any]:
        # Verdicts by reason, conflicts the constraints caught, faults: what a test or an
        # operator checks before the Prometheus metrics.
        return {"queue_depth": consumer.depth, "counts": dict(consumer.counts)}

    @app.post("/shelves", status_code=201, dependencies=auth)
    async def add_shelf(body: ShelfIn) -> ShelfIn:
        await guarded(store.add_shelf(body.shelf_id, body.name, clock.now(), ADMIN_ACTOR))
        return body

    @app.post("/items", status_code=201, dependencies=auth)
    async def add_item(body: ItemIn) -> Availability:
        await guarded(
            store.add_item(
                body.item_id,
                body.shelf_id,
                body.name,
                clock.now(),
                ADMIN_ACTOR,
                loan_days=body.loan_days,
            )
        )
        async with store.write() as tx:
            availability = await tx.availability(body.item_id, clock.now(), bump=True)
        publisher.publish(
            topics.availability(body.shelf_id, body.item_id), encode(availability), retain=True
        )
        return availability

    @app.get("/items", dependencies=auth)
    async def list_items() -> list[Availability]:
        return list(await store.all_availability(clock.now()))

    @app.get("/items/{item_id}/label", dependencies=auth)
    async def label(item_id: str) -> LabelOut:
        item = await store.get_item(item_id)
        if item is None:
            raise HTTPException(404, f"no item {item_id}")
        return LabelOut(
            item_id=item_id,
            version=item.label_version,
            code=signer.label(item_id, item.label_version),
        )

    @app.post("/members", status_code=201, dependencies=auth)
    async def add_member(body: MemberIn) -> MemberIn:
        await guarded(
            store.add_member(
                body.member_id,
                body.name,
                clock.now(),
                ADMIN_ACTOR,
                checkout_limit=body.checkout_limit,
            )
        )
        return body

    @app.post("/members/{member_id}/passes", status_code=201, dependencies=auth)
    async def issue_pass(member_id: str, body: PassIn) -> PassOut:
        member = await store.get_member(member_id)
        if member is None:
            raise HTTPException(404, f"no member {member_id}")
        if member.suspended:
            # The kiosk would refuse it anyway; the admin should hear it now, not the member.
            raise HTTPException(
                409,
                {"reason": Reason.MEMBER_SUSPENDED.value, "message": f"{member_id} is suspended"},
            )
        now = clock.now()
        pass_id = new_id()
        # Codes carry whole seconds; store the same instant the code will be checked against.
        expires_at = (now + timedelta(seconds=body.ttl_s or pass_ttl_s)).replace(microsecond=0)
        await guarded(store.issue_pass(pass_id, member_id, now, expires_at, ADMIN_ACTOR))
        return PassOut(
            pass_id=pass_id,
            member_id=member_id,
            expires_at=expires_at,
            code=signer.member_pass(pass_id, member_id, expires_at),
        )

    @app.post("/kiosks", status_code=201, dependencies=auth)
    async def add_kiosk(body: KioskIn) -> KioskConfig:
        await guarded(
            store.add_kiosk(
                body.kiosk_id,
                body.shelf_id,
                clock.now(),
                ADMIN_ACTOR,
                session_timeout_s=body.session_timeout_s,
            )
        )
        config = next(c for c in await rollout.kiosk_configs(store) if c.kiosk_id == body.kiosk_id)
        publisher.publish(topics.config(body.kiosk_id), encode(config), retain=True)
        return config

    @app.get("/audit", dependencies=auth)
    async def audit(limit: int = 100) -> list[dict[str, Any]]:
        rows = await store.audit_tail(max(1, min(limit, 10_000)))
        return [
            {
                "at": r.at,
                "actor": r.actor,
                "action": r.action,
                "reason": r.reason,
                "kiosk_id": r.kiosk_id,
                "member_id": r.member_id,
                "item_id": r.item_id,
                "event_id": r.event_id,
                "detail": r.detail,
            }
            for r in rows
        ]

    _mount(app, routers, open_routers, auth)
    return app


def _mount(
    app: FastAPI, routers: Sequence[APIRouter], open_routers: Sequence[APIRouter], auth: list[Any]
) -> None:
    for extra in routers:
        app.include_router(extra, dependencies=auth)
    for extra in open_routers:
        app.include_router(extra)
