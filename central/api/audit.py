"""``/audit``: the newest rows, the hash chain verified, every row exported as JSON lines."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from central.api.deps import ADMIN, AuditService, BrowseService
from central.audit import ChainReport

router = APIRouter(prefix="/audit", dependencies=ADMIN)


def _utc(moment: datetime | None) -> datetime | None:
    # A time without a zone from a script means UTC, as everything central stores.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@router.get("")
async def tail(audit: AuditService, limit: int = 100) -> list[dict[str, Any]]:
    """The newest rows."""
    return await audit.tail(limit)


@router.get("/alerts")
async def alerts(browse: BrowseService, limit: int = 50) -> list[dict[str, Any]]:
    """The newest security alerts, newest first."""
    return [dataclasses.asdict(a) for a in await browse.alerts(max(1, min(limit, 1000)))]


@router.get("/verify")
async def verify(audit: AuditService) -> ChainReport:
    """Whether the hash chain holds, and where it breaks if not."""
    return await audit.verify()


@router.get("/export")
async def export(
    audit: AuditService, since: datetime | None = None, until: datetime | None = None
) -> StreamingResponse:
    """Every row in the window, with its hashes, as JSON lines."""
    lines = audit.export(_utc(since), _utc(until))
    return StreamingResponse(lines, media_type="application/x-ndjson")
