"""The audit log as admins read it: the newest rows, the hash chain checked, a full export."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from central.audit import PAGE, ChainReport, verify_chain
from central.storage.base import Store

# The most rows one look at the tail returns; an export has no limit.
MAX_TAIL = 10_000


@dataclass(frozen=True)
class AuditLog:
    """The audit log of one central's database."""

    store: Store

    async def tail(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` rows (1 to 10,000), newest first."""
        rows = await self.store.audit_tail(max(1, min(limit, MAX_TAIL)))
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

    async def verify(self) -> ChainReport:
        """Walk the hash chain; where it breaks, if it does."""
        return await verify_chain(self.store)

    async def export(self, start: datetime | None, end: datetime | None) -> AsyncIterator[bytes]:
        """Rows with their hashes as JSON lines, a page at a time, oldest first."""
        # Chain what is pending first, so the export carries every hash it can.
        await self.store.seal_audit()
        after = 0
        while True:
            rows = await self.store.audit_rows(after, PAGE, start, end)
            if not rows:
                return
            yield b"".join(
                json.dumps(row.to_json(), separators=(",", ":")).encode() + b"\n" for row in rows
            )
            after = rows[-1].seq
