"""The rollout flag, the kill switch and the circuit breaker, as admins operate them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from central import rollout
from central.breaker import Breaker, Window
from central.clock import Clock
from central.consumer import Publisher
from central.metrics import Metrics
from central.services.refusals import audited
from central.storage.base import Store
from central.storage.rollout import FlagMode, FlagRow, FlagSetting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Changed:
    """The flag after a change, and how many kiosk configurations were republished."""

    row: FlagRow
    kiosks_told: int


@dataclass(frozen=True)
class RolloutControl:
    """The flag and breaker of one deployment, changed through one central instance."""

    store: Store
    clock: Clock
    publisher: Publisher
    metrics: Metrics
    breaker: Breaker

    async def _changed(self, row: FlagRow) -> Changed:
        self.metrics.flag(row.setting.mode.value, row.setting.percent, tripped=row.tripped)
        # Retained, so every kiosk shows the new idle LED, also after a reboot.
        return Changed(row, await rollout.publish_configs(self.store, self.publisher, row))

    async def flag(self) -> FlagRow:
        """The flag as stored."""
        return await self.store.get_flag()

    async def set_flag(self, setting: FlagSetting, reason: str, actor: str) -> Changed:
        """Set the flag (refused while the breaker holds it off)."""
        who = f"admin:{actor}"
        row = await audited(
            self.store,
            self.clock,
            who,
            self.store.set_flag(setting, reason, who, self.clock.now()),
            "rollout.flag_set",
        )
        log.info("rollout flag set to %s by %s", setting.mode.value, actor)
        return await self._changed(row)

    async def kill(self, reason: str, actor: str) -> Changed:
        """Checkout off everywhere, whatever state the flag and breaker are in."""
        row = await self.store.set_flag(
            FlagSetting(FlagMode.OFF),
            reason,
            f"admin:{actor}",
            self.clock.now(),
            action="rollout.kill_switch",
            while_tripped=True,
        )
        log.warning("kill switch thrown by %s: checkout is off", actor)
        return await self._changed(row)

    async def window(self) -> Window:
        """What the breaker judges now."""
        return await self.breaker.window()

    async def reset_breaker(self, reason: str, actor: str) -> Changed:
        """Release the breaker's hold; the flag stays as it is."""
        who = f"admin:{actor}"
        row = await audited(
            self.store,
            self.clock,
            who,
            self.store.reset_breaker(reason, who, self.clock.now()),
            "breaker.reset",
        )
        log.warning("circuit breaker reset by %s; flag stays %s", actor, row.setting.mode)
        return await self._changed(row)
