"""The audit chain's upkeep: the sealer loop every instance runs, and the verify walk."""

from __future__ import annotations

import asyncio
import logging

from pydantic import BaseModel, ConfigDict, Field

from central.storage.base import Store
from central.storage.chain import ChainWalk

log = logging.getLogger(__name__)

# Rows read per query: enough to make the walk cheap, few enough to keep memory flat.
PAGE = 1000
# How far behind its writes the chain may run on PostgreSQL.
SEAL_EVERY_S = 1.0


class ChainReport(BaseModel):
    """What walking the audit chain found."""

    model_config = ConfigDict(extra="forbid")

    intact: bool = Field(description="True when every chained row checks out.")
    checked: int = Field(description="Chained rows whose hashes were checked.")
    pending: int = Field(description="Rows written and not chained yet (a second behind).")
    genesis_seq: int = Field(description="Rows up to this seq predate the chain (unchecked).")
    head_pos: int = Field(description="The chain place of the newest chained row.")
    broken_seq: int | None = Field(description="The first row that fails, if any.")
    problem: str | None = Field(description="What is wrong with that row, in words.")


async def verify_chain(store: Store, page: int = PAGE) -> ChainReport:
    """Chain what is pending, then walk the whole chain a page at a time."""
    await store.seal_audit()
    # The head is read first: rows chained while the walk runs are left for next time.
    head = await store.audit_head()
    walk = ChainWalk(head)
    after = 0
    while after < head.pos:
        rows = [
            r for r in await store.audit_chain_rows(after, page) if (r.chain_pos or 0) <= head.pos
        ]
        if not rows or not walk.check_page(rows):
            break
        after = rows[-1].chain_pos or 0
    walk.finish()
    return ChainReport(
        intact=walk.broken_seq is None,
        checked=walk.checked,
        pending=head.pending,
        genesis_seq=head.genesis_seq,
        head_pos=head.pos,
        broken_seq=walk.broken_seq,
        problem=walk.problem,
    )


async def seal_forever(store: Store) -> None:
    """Chain new audit rows every second; a failed pass is logged and tried again."""
    while True:
        try:
            await store.seal_audit()
        except Exception:  # the database may be away; the rows wait, the service runs on
            log.exception("sealing the audit chain failed; retrying")
        await asyncio.sleep(SEAL_EVERY_S)
