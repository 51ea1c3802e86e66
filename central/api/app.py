"""The admin HTTP API (FastAPI), assembled: its routers, its guards, its one refusal handler.

Each resource is a router module under ``central/api/`` that declares its prefix and the
admin-token dependency itself; what a route does is a call to an application service
(``central/services/``), kept in ``app.state`` and reached through ``Depends``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST

from broker.messages import KioskState
from central.api import (
    audit,
    enrol,
    guard,
    holds,
    items,
    kiosks,
    loans,
    members,
    policies,
    refusals,
    releases,
    reminders,
    reservations,
    rollout,
    security,
    shelves,
    tickets,
)
from central.api.deps import ADMIN, provide
from central.clock import Clock
from central.consumer import Consumer, Publisher
from central.fleet import BrokerAccounts
from central.keys import KeyFile
from central.services.audit_log import AuditLog
from central.services.circulation import Circulation
from central.services.claims import ClaimGate
from central.services.enrolment import BrokerAddress, KioskEnrolment
from central.services.fleet_updates import FleetUpdates
from central.services.kiosks import Kiosks
from central.services.library import Library
from central.services.loans import Loans
from central.services.reminders import Reminders
from central.services.rollout_control import RolloutControl
from central.services.security_actions import SecurityActions
from central.storage.base import Store
from central.tokens import TokenSigner

ADMIN_ACTOR = "admin:api"


def create_app(
    store: Store,
    signer: TokenSigner,
    clock: Clock,
    publisher: Publisher,
    consumer: Consumer,
    *,
    admin_token: str,
    pass_ttl_s: int,
    accounts: BrokerAccounts | None = None,
    broker_address: BrokerAddress | None = None,
    routers: Sequence[APIRouter] = (),
    keys: KeyFile | None = None,
    rollout_control: RolloutControl | None = None,
    fleet_updates: FleetUpdates | None = None,
    reminder_service: Reminders | None = None,
) -> FastAPI:
    """The admin API bound to one central instance's store and broker link.

    ``routers`` are other areas' endpoints (probes), each carrying its own dependencies:
    the admin token, or none for a probe. ``rollout_control`` (which needs the breaker)
    adds ``/rollout``; ``fleet_updates`` adds ``/releases`` and ``/rollouts``;
    ``reminder_service`` adds ``/reminders``.
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
    app.state.admin_token = admin_token
    provide(
        app,
        Library(store, signer, clock, publisher, pass_ttl_s, ADMIN_ACTOR),
        SecurityActions(store, clock, keys, ADMIN_ACTOR),
        Loans(store, clock),
        Circulation(store, clock, publisher, ADMIN_ACTOR),
        Kiosks(store, clock, publisher, consumer, ADMIN_ACTOR),
        AuditLog(store),
    )
    # Body size, control characters and error answers, before the token is even looked at.
    guard.install(app, consumer.metrics.registry)
    refusals.install(app)

    if accounts is not None and broker_address is not None:
        provide(
            app,
            KioskEnrolment(
                store,
                signer,
                clock,
                publisher,
                accounts,
                broker_address,
                claims,
                ADMIN_ACTOR,
            ),
        )
        app.include_router(enrol.router)
        app.include_router(enrol.claims)
    for router in (
        shelves.router,
        items.router,
        members.router,
        security.router,
        kiosks.router,
        audit.router,
        loans.router,
        holds.router,
        reservations.router,
        tickets.router,
        policies.router,
        _ops_router(store, clock, consumer),
        *routers,
    ):
        app.include_router(router)
    if fleet_updates is not None:
        provide(app, fleet_updates)
        app.include_router(releases.router)
        app.include_router(releases.downloads)
    if rollout_control is not None:
        provide(app, rollout_control)
        app.include_router(rollout.router)
    if reminder_service is not None:
        provide(app, reminder_service)
        app.include_router(reminders.router)
    return app


def _ops_router(store: Store, clock: Clock, consumer: Consumer) -> APIRouter:
    """``/health`` (open), ``/metrics`` and ``/stats``."""
    router = APIRouter()

    @router.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "queue_depth": consumer.depth}

    @router.get("/metrics", dependencies=ADMIN)
    async def metrics() -> Response:
        # Gauges are read at scrape time; counters move as scans are decided.
        consumer.metrics.queue_depth.set(consumer.depth)
        consumer.metrics.overdue_items.set(len(await store.overdue_loans(clock.now())))
        consumer.metrics.kiosks_connected.set(
            sum(1 for s in consumer.presence.values() if s.state is KioskState.ONLINE)
        )
        consumer.metrics.fleet(consumer.presence, [c.kiosk_id for c in await store.kiosk_configs()])
        return Response(consumer.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/stats", dependencies=ADMIN)
    async def stats() -> dict[str, Any]:
        # Verdicts by reason, conflicts the constraints caught, faults: what a test or an
        # operator checks before the Prometheus metrics.
        return {
            "queue_depth": consumer.depth,
            "counts": dict(consumer.counts),
            "batches": dict(consumer.batching),
        }

    return router
