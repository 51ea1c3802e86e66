"""Admin API for the rollout flag, the kill switch and the circuit breaker."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Self

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from broker.ids import ID_RE
from central import rollout
from central.api.deps import ADMIN
from central.api.text import Text
from central.breaker import Breaker
from central.clock import Clock
from central.metrics import Metrics
from central.storage.base import Store
from central.storage.rollout import FLAG, FlagMode, FlagRefusedError, FlagRow, FlagSetting

if TYPE_CHECKING:
    from central.consumer import Publisher

log = logging.getLogger(__name__)

_ACTOR = r"^[A-Za-z0-9._@-]{1,64}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Why(_In):
    """Who asks for a change, and why (both go into the audit log)."""

    reason: Text = Field(min_length=3, max_length=500, description="Why, for the audit log.")
    actor: str = Field(default="api", pattern=_ACTOR, description="Who, for the audit log.")


class FlagIn(Why):
    """The rollout flag as an admin wants it."""

    mode: FlagMode = Field(description="off, allow-list, percentage or on.")
    members: list[str] = Field(
        default=[], max_length=10_000, description="allow-list: members admitted."
    )
    items: list[str] = Field(default=[], max_length=10_000, description="allow-list: items.")
    kiosks: list[str] = Field(default=[], max_length=10_000, description="allow-list: kiosks.")
    percent: int | None = Field(
        default=None, ge=0, le=100, description="percentage: share of members admitted."
    )

    @model_validator(mode="after")
    def _fits_the_mode(self) -> Self:
        lists = {"members": self.members, "items": self.items, "kiosks": self.kiosks}
        for name, ids in lists.items():
            bad = [i for i in ids if not _is_id(i)]
            if bad:
                raise ValueError(f"{name}: {bad[0]!r} is not an id")
        if self.mode is FlagMode.ALLOW_LIST:
            if not any(lists.values()):
                raise ValueError("allow-list needs --members, --items or --kiosks")
        elif any(lists.values()):
            raise ValueError("members, items and kiosks only go with mode allow-list")
        if self.mode is FlagMode.PERCENTAGE and self.percent is None:
            raise ValueError("percentage needs --percent")
        if self.mode is not FlagMode.PERCENTAGE and self.percent is not None:
            raise ValueError("percent only goes with mode percentage")
        return self


def _is_id(text: str) -> bool:
    return ID_RE.match(text) is not None


class FlagOut(BaseModel):
    """The rollout flag and the breaker's hold on it."""

    flag: str = Field(description="The flag's name.")
    mode: FlagMode = Field(description="The mode an admin (or the breaker) last set.")
    members: list[str] = Field(description="allow-list: members admitted.")
    items: list[str] = Field(description="allow-list: items admitted.")
    kiosks: list[str] = Field(description="allow-list: kiosks where checkout works.")
    percent: int = Field(description="percentage: share of members admitted.")
    reason: str = Field(description="Why it was last changed.")
    changed_by: str = Field(description="Who last changed it.")
    changed_at: datetime = Field(description="When.")
    breaker_tripped: bool = Field(description="Whether the circuit breaker holds checkout off.")
    trip_reason: str | None = Field(description="Why the breaker tripped.")
    kiosks_told: int | None = Field(default=None, description="Kiosk configs republished.")


class BreakerOut(BaseModel):
    """The circuit breaker and the window it judges."""

    tripped: bool = Field(description="Whether it holds checkout off.")
    tripped_at: datetime | None = Field(description="When it tripped.")
    trip_reason: str | None = Field(description="Why.")
    reset_at: datetime | None = Field(description="When an admin last reset it.")
    since: datetime = Field(description="Start of the window judged now.")
    scans: int = Field(description="Code scans decided in the window.")
    errors: int = Field(description="Of those, verdicts that show a system fault.")
    errors_counted: int = Field(description="Errors the rate counts: each kiosk's share capped.")
    kiosks_with_errors: int = Field(description="Kiosks those errors came from.")
    security_alerts: int = Field(description="Security alerts in the window.")
    window_s: float = Field(description="Window length.")
    max_error_rate: float = Field(description="Error share that trips it.")
    min_scans: int = Field(description="Scans needed before the error rate counts.")
    max_security_alerts: int = Field(description="Alerts that trip it (one per kiosk).")
    min_kiosks: int = Field(description="Kiosks errors must come from to trip it.")


def flag_out(row: FlagRow, kiosks_told: int | None = None) -> FlagOut:
    """The API's view of a stored flag."""
    s = row.setting
    return FlagOut(
        flag=FLAG,
        mode=s.mode,
        members=list(s.members),
        items=list(s.items),
        kiosks=list(s.kiosks),
        percent=s.percent,
        reason=row.reason,
        changed_by=row.changed_by,
        changed_at=row.changed_at,
        breaker_tripped=row.tripped,
        trip_reason=row.trip_reason,
        kiosks_told=kiosks_told,
    )


def router(
    store: Store, clock: Clock, publisher: Publisher, metrics: Metrics, breaker: Breaker
) -> APIRouter:
    """The rollout endpoints, each behind the admin token."""
    api = APIRouter(prefix="/rollout", tags=["rollout"], dependencies=ADMIN)

    async def changed(row: FlagRow) -> FlagOut:
        metrics.flag(row.setting.mode.value, row.setting.percent, tripped=row.tripped)
        # Retained, so every kiosk shows the new idle LED, also after a reboot.
        told = await rollout.publish_configs(store, publisher, row)
        return flag_out(row, told)

    @api.get("/flag")
    async def get_flag() -> FlagOut:
        return flag_out(await store.get_flag())

    @api.put("/flag")
    async def set_flag(body: FlagIn) -> FlagOut:
        setting = FlagSetting(
            body.mode,
            tuple(body.members),
            tuple(body.items),
            tuple(body.kiosks),
            body.percent or 0,
        )
        try:
            row = await store.set_flag(setting, body.reason, f"admin:{body.actor}", clock.now())
        except FlagRefusedError as exc:
            raise HTTPException(409, str(exc)) from exc
        log.info("rollout flag set to %s by %s", setting.mode.value, body.actor)
        return await changed(row)

    @api.post("/kill-switch")
    async def kill_switch(body: Why) -> FlagOut:
        # Works whatever state the flag and breaker are in: off is always allowed.
        row = await store.set_flag(
            FlagSetting(FlagMode.OFF),
            body.reason,
            f"admin:{body.actor}",
            clock.now(),
            action="rollout.kill_switch",
            while_tripped=True,
        )
        log.warning("kill switch thrown by %s: checkout is off", body.actor)
        return await changed(row)

    @api.get("/breaker")
    async def get_breaker() -> BreakerOut:
        view = await breaker.window()
        policy = breaker.policy
        return BreakerOut(
            tripped=view.flag.tripped,
            tripped_at=view.flag.tripped_at,
            trip_reason=view.flag.trip_reason,
            reset_at=view.flag.breaker_reset_at,
            since=view.since,
            scans=view.counts.attempts,
            errors=view.counts.errors,
            errors_counted=policy.counted_errors(view.counts),
            kiosks_with_errors=len(view.counts.kiosk_errors),
            security_alerts=view.counts.security_alerts,
            window_s=policy.window.total_seconds(),
            max_error_rate=policy.error_rate,
            min_scans=policy.min_scans,
            max_security_alerts=policy.security_alerts,
            min_kiosks=policy.min_kiosks,
        )

    @api.post("/breaker/reset")
    async def reset_breaker(body: Why) -> FlagOut:
        try:
            row = await store.reset_breaker(body.reason, f"admin:{body.actor}", clock.now())
        except FlagRefusedError as exc:
            raise HTTPException(409, str(exc)) from exc
        log.warning("circuit breaker reset by %s; flag stays %s", body.actor, row.setting.mode)
        return await changed(row)

    return api
