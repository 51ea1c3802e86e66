"""The rollout engine: looks at each running rollout, offers its release to the cohort, stores
what kiosks report, and halts or finishes the rollout (rules in central/releases.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta

from broker import topics
from broker.messages import KioskStatus, SecurityAlert, UpdateOffer, encode
from central import releases
from central.clock import Clock
from central.consumer import Publisher
from central.storage.base import Store
from central.storage.releases import HALT_ACTOR, RolloutRow, RolloutState

log = logging.getLogger(__name__)


class UpdateEngine:
    """One per central instance; the database keeps instances from offering twice in a row."""

    def __init__(
        self,
        store: Store,
        kiosks: Callable[[], Awaitable[Sequence[str]]],
        clock: Clock,
        publisher: Publisher,
        presence: Mapping[str, KioskStatus],
        *,
        artifact_url: Callable[[str], str],
        resend_s: float = 30.0,
    ) -> None:
        self._store = store
        self._kiosks = kiosks
        self._clock = clock
        self._publisher = publisher
        self._presence = presence
        self._artifact_url = artifact_url
        self._resend = timedelta(seconds=resend_s)

    async def run(self, every_s: float) -> None:
        """Look every ``every_s`` seconds until cancelled; a failed look is logged, not fatal."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("rollout look failed; trying again")
            await asyncio.sleep(every_s)

    async def tick(self) -> None:
        """One look at every running rollout."""
        for rollout in await self._store.list_rollouts(states=(RolloutState.RUNNING,)):
            await self._advance(rollout)

    async def _advance(self, rollout: RolloutRow) -> None:
        release = await self._store.get_release(rollout.version)
        if release is None:
            return
        fleet = await self._fleet()
        members = releases.cohort(
            rollout.rollout_id, fleet, percent=rollout.percent, allow=rollout.kiosks
        )
        stored = {row.kiosk_id: row for row in await self._store.rollout_kiosks(rollout.rollout_id)}
        now = self._clock.now()
        states: dict[str, str] = {k: r.state for k, r in stored.items() if k in members}
        for kiosk_id in sorted(members):
            row = stored.get(kiosk_id)
            view = releases.KioskView(
                self._presence.get(kiosk_id),
                row.state if row else None,
                row.offered_at if row else None,
            )
            decision = releases.decide(rollout.rollout_id, rollout.version, view, now, self._resend)
            if decision.step is releases.Step.RECORD:
                assert decision.state is not None
                await self._store.record_update(
                    rollout.rollout_id, kiosk_id, decision.state, decision.reason, now
                )
                states[kiosk_id] = decision.state
                log.info(
                    "rollout %s: %s is %s %s",
                    rollout.rollout_id,
                    kiosk_id,
                    decision.state,
                    decision.reason or "",
                )
            elif decision.step is releases.Step.OFFER:
                offer = UpdateOffer(
                    rollout_id=rollout.rollout_id,
                    version=release.version,
                    url=self._artifact_url(release.version),
                    sha256=release.sha256,
                    size=release.size,
                    signature=release.signature,
                    issued_at=now,
                )
                # Not retained: a kiosk that is off gets it again when it is back online.
                self._publisher.publish(topics.command(kiosk_id), encode(offer))
                await self._store.record_update(
                    rollout.rollout_id, kiosk_id, releases.OFFERED, None, now, offered=True
                )
                states.setdefault(kiosk_id, releases.OFFERED)
        counts = releases.tally(len(members), states.values())
        if releases.should_halt(
            counts, abort_percent=rollout.abort_percent, abort_min=rollout.abort_min
        ):
            await self._halt(rollout, counts)
        elif releases.is_done(counts):
            await self._store.change_rollout(
                rollout.rollout_id,
                RolloutState.DONE,
                reason="every kiosk of the cohort runs the release",
                actor=HALT_ACTOR,
                now=now,
            )

    async def _halt(self, rollout: RolloutRow, counts: releases.Tally) -> None:
        why = (
            f"{counts.failed} of {counts.finished} kiosks failed"
            f" (abort at {rollout.abort_percent} % after {rollout.abort_min})"
        )
        now = self._clock.now()
        await self._store.change_rollout(
            rollout.rollout_id,
            RolloutState.HALTED,
            reason=why,
            actor=HALT_ACTOR,
            now=now,
            detail={"failed": counts.failed, "healthy": counts.healthy, "cohort": counts.cohort},
        )
        log.error("rollout %s of %s halted: %s", rollout.rollout_id, rollout.version, why)
        self._publisher.publish(
            topics.ALERTS,
            encode(
                SecurityAlert(
                    kind="rollout_halted",
                    detail=f"rollout {rollout.rollout_id} of {rollout.version}: {why}",
                    at=now,
                )
            ),
        )

    async def _fleet(self) -> Sequence[str]:
        return await self._kiosks()
