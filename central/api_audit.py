"""Admin API for the audit trail: verify the hash chain, export rows as JSON lines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from central.storage.base import Store
from central.storage.chain import ChainWalk

# Rows read per query: enough to make the walk cheap, few enough to keep memory flat.
PAGE = 1000


class ChainReport(BaseModel):
    """What walking the audit chain found."""

    model_config = ConfigDict(extra="forbid")

    intact: bool = Field(description="True when every chained row checks out.")
    checked: int = Field(description="Chained rows whose hashes were checked.")
    unchained: int = Field(description="Rows written before the chain began (not checked).")
    head_seq: int = Field(description="The newest row the chain head names.")
    broken_seq: int | None = Field(description="The first row that fails, if any.")
    problem: str | None = Field(description="What is wrong with that row, in words.")


def _utc(moment: datetime | None) -> datetime | None:
    # A time without a zone from a script means UTC, as everything central stores.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


async def verify_chain(store: Store, page: int = PAGE) -> ChainReport:
    """Walk the whole chain a page at a time; stop at the first broken row."""
    # The head is read first: rows appended while the walk runs are left for next time.
    head = await store.audit_head()
    walk = ChainWalk(head)
    after = 0
    while after < head.seq:
        rows = [r for r in await store.audit_rows(after, page) if r.seq <= head.seq]
        if not rows or not walk.check_page(rows):
            break
        after = rows[-1].seq
    walk.finish()
    return ChainReport(
        intact=walk.broken_seq is None,
        checked=walk.checked,
        unchained=walk.unchained,
        head_seq=head.seq,
        broken_seq=walk.broken_seq,
        problem=walk.problem,
    )


def audit_router(store: Store) -> APIRouter:
    """Routes under ``/audit`` (the caller adds the admin-token dependency)."""
    router = APIRouter()

    @router.get("/audit/verify")
    async def verify() -> ChainReport:
        return await verify_chain(store)

    @router.get("/audit/export")
    async def export(
        since: datetime | None = None, until: datetime | None = None
    ) -> StreamingResponse:
        start, end = _utc(since), _utc(until)

        async def lines() -> AsyncIterator[bytes]:
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
