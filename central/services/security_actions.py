"""An admin's security actions: invalidate every pass, block a kiosk by hand, rotate the key."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from central import security
from central.clock import Clock
from central.keys import KeyFile, Rotation
from central.services.refusals import Refusal, RefusedError
from central.storage.base import AuditEntry, Store

# A hand block with no end given lasts this long: "until an admin lifts it", in effect.
HAND_BLOCK = timedelta(days=365)


@dataclass(frozen=True)
class SecurityActions:
    """Security actions on one central instance, each audited as ``actor``."""

    store: Store
    clock: Clock
    keys: KeyFile | None
    actor: str

    async def invalidate_passes(self, reason: str) -> int:
        """Invalidate every outstanding pass; how many there were."""
        return await security.invalidate_all_passes(
            self.store, self.clock.now(), self.actor, reason
        )

    async def block_kiosk(self, kiosk_id: str, minutes: int | None, reason: str) -> datetime:
        """Refuse a kiosk's scans for ``minutes`` (a year if None); until when."""
        now = self.clock.now()
        until = now + (HAND_BLOCK if minutes is None else timedelta(minutes=minutes))
        if not await security.set_kiosk_block(self.store, kiosk_id, until, now, self.actor, reason):
            raise RefusedError(Refusal.NOT_FOUND, f"no kiosk {kiosk_id}")
        return until

    async def unblock_kiosk(self, kiosk_id: str, reason: str) -> None:
        """Lift a kiosk's block."""
        now = self.clock.now()
        if not await security.set_kiosk_block(self.store, kiosk_id, None, now, self.actor, reason):
            raise RefusedError(Refusal.NOT_FOUND, f"no kiosk {kiosk_id}")

    def _ring(self) -> KeyFile:
        if self.keys is None:
            raise RefusedError(Refusal.CONFLICT, "this central runs with a fixed key ring")
        return self.keys

    async def rotate_keys(self) -> Rotation:
        """Sign new codes with a new key; the old one verifies for its grace period."""
        ring = self._ring()
        now = self.clock.now()
        # fsync and rename: off the event loop.
        rotation = await asyncio.to_thread(ring.rotate, now)
        async with self.store.write() as tx:
            await tx.audit(
                AuditEntry(
                    now,
                    self.actor,
                    "key.rotate",
                    detail={
                        "active": rotation.active,
                        "previous": rotation.previous,
                        "previous_valid_until": rotation.previous_valid_until.isoformat(),
                    },
                )
            )
        return rotation

    def key_ids(self) -> list[dict[str, Any]]:
        """The ring's key ids and their state (never key material)."""
        return self._ring().describe()
