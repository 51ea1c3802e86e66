"""Admin API for the audit trail: verify the hash chain, export rows as JSON lines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from central.api.deps import ADMIN
from central.audit import PAGE, ChainReport, verify_chain
from central.storage.base import Store


def _utc(moment: datetime | None) -> datetime | None:
    # A time without a zone from a script means UTC, as everything central stores.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def audit_router(store: Store) -> APIRouter:
    """Routes under ``/audit``, each behind the admin token."""
    router = APIRouter(dependencies=ADMIN)

    @router.get("/audit")
    async def tail(limit: int = 100) -> list[dict[str, Any]]:
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

    @router.get("/audit/verify")
    async def verify() -> ChainReport:
        return await verify_chain(store)

    @router.get("/audit/export")
    async def export(
        since: datetime | None = None, until: datetime | None = None
    ) -> StreamingResponse:
        start, end = _utc(since), _utc(until)

        async def lines() -> AsyncIterator[bytes]:
            # Chain what is pending first, so the export carries every hash it can.
            await store.seal_audit()
            after = 0
            while True:
                rows = await store.audit_rows(after, PAGE, start, end)
                if not rows:
                    return
                yield b"".join(
                    json.dumps(row.to_json(), separators=(",", ":")).encode() + b"\n"
                    for row in rows
                )
                after = rows[-1].seq

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return router
