"""Kiosk software releases as admins handle them: publish one, roll it out in stages, watch it."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.release import check_artifact
from central.clock import Clock
from central.services.refusals import Refusal, RefusedError, audited
from central.storage.base import Store
from central.storage.rows import KioskUpdateRow, ReleaseRow, RolloutRow, RolloutState

# Kept under the body limit of `/releases` (central/api/guard.py) once base64-encoded.
MAX_ARTIFACT = 8 * 1024 * 1024


@dataclass(frozen=True)
class FleetUpdates:
    """Releases and rollouts on one central's database (its audit log records refusals)."""

    store: Store
    clock: Clock
    trusted: Sequence[Ed25519PublicKey]

    async def publish(
        self, version: str, artifact_b64: str, signature: str, notes: str, actor: str
    ) -> ReleaseRow:
        """Store a signed release; refused if it is not what its signature says."""
        try:
            artifact = base64.b64decode(artifact_b64, validate=True)
        except binascii.Error as exc:
            raise RefusedError(Refusal.INVALID, "artifact: not base64") from exc
        if not artifact or len(artifact) > MAX_ARTIFACT:
            raise RefusedError(Refusal.INVALID, f"artifact: 1 byte to {MAX_ARTIFACT} bytes")
        sha256 = hashlib.sha256(artifact).hexdigest()
        if self.trusted:
            # Defence in depth: kiosks check too, but a release no kiosk would take never
            # reaches them, and a stolen admin token alone cannot publish one.
            why = check_artifact(
                artifact,
                version=version,
                sha256=sha256,
                signature=signature,
                trusted=list(self.trusted),
            )
            if why is not None:
                raise RefusedError(Refusal.INVALID, f"signature: {why.value}")
        now = self.clock.now()
        row = ReleaseRow(version, sha256, len(artifact), signature, notes, actor, now)
        stored: ReleaseRow = await audited(
            self.store,
            self.clock,
            actor,
            self.store.add_release(row, artifact, actor, now),
            "release.publish",
            version=version,
        )
        return stored

    async def list_releases(self) -> Sequence[ReleaseRow]:
        """Every release, as published."""
        return await self.store.list_releases()

    async def artifact(self, version: str) -> bytes:
        """A release's artifact, for a kiosk to fetch."""
        data = await self.store.release_artifact(version)
        if data is None:
            raise RefusedError(Refusal.NOT_FOUND, f"no release {version}")
        return data

    async def start(
        self,
        version: str,
        *,
        percent: int,
        kiosks: list[str],
        abort_percent: int,
        abort_min: int,
        reason: str,
        actor: str,
    ) -> RolloutRow:
        """Start offering a release: to an allow-list, a share of the fleet, or both."""
        if percent == 0 and not kiosks:
            raise RefusedError(Refusal.INVALID, "a rollout needs --percent or --kiosks")
        started: RolloutRow = await audited(
            self.store,
            self.clock,
            actor,
            self.store.start_rollout(
                version,
                percent=percent,
                kiosks=kiosks,
                abort_percent=abort_percent,
                abort_min=abort_min,
                reason=reason,
                actor=actor,
                now=self.clock.now(),
            ),
            "release.rollout_start",
            version=version,
        )
        return started

    async def list_rollouts(self) -> Sequence[RolloutRow]:
        """Every rollout."""
        return await self.store.list_rollouts()

    async def rollout(self, rollout_id: int) -> tuple[RolloutRow, Sequence[KioskUpdateRow]]:
        """One rollout and where each of its kiosks stands."""
        row = await self.store.get_rollout(rollout_id)
        if row is None:
            raise RefusedError(Refusal.NOT_FOUND, f"no rollout {rollout_id}")
        return row, await self.store.rollout_kiosks(rollout_id)

    async def change(
        self, rollout_id: int, to: RolloutState, reason: str, actor: str
    ) -> RolloutRow:
        """Pause, resume or abort a rollout."""
        changed: RolloutRow = await audited(
            self.store,
            self.clock,
            actor,
            self.store.change_rollout(
                rollout_id, to, reason=reason, actor=actor, now=self.clock.now()
            ),
            f"release.rollout_{to.value}",
            rollout_id=str(rollout_id),
        )
        return changed
