"""``/rollout``: the flag, the kill switch and the circuit breaker over HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from broker.ids import ID_RE
from central.api.deps import ADMIN, RolloutService
from central.api.text import Text
from central.services.rollout_control import Changed
from central.storage.rollout import FLAG, FlagMode, FlagRow, FlagSetting

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


router = APIRouter(prefix="/rollout", tags=["rollout"], dependencies=ADMIN)


def _out(changed: Changed) -> FlagOut:
    return flag_out(changed.row, changed.kiosks_told)


@router.get("/flag")
async def get_flag(control: RolloutService) -> FlagOut:
    """The flag and the breaker's hold on it."""
    return flag_out(await control.flag())


@router.put("/flag")
async def set_flag(body: FlagIn, control: RolloutService) -> FlagOut:
    """Set the flag's mode and lists."""
    setting = FlagSetting(
        body.mode, tuple(body.members), tuple(body.items), tuple(body.kiosks), body.percent or 0
    )
    return _out(await control.set_flag(setting, body.reason, body.actor))


@router.post("/kill-switch")
async def kill_switch(body: Why, control: RolloutService) -> FlagOut:
    """Checkout off everywhere, now."""
    return _out(await control.kill(body.reason, body.actor))


@router.get("/breaker")
async def get_breaker(control: RolloutService) -> BreakerOut:
    """The circuit breaker and the window it judges."""
    view = await control.window()
    policy = control.breaker.policy
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


@router.post("/breaker/reset")
async def reset_breaker(body: Why, control: RolloutService) -> FlagOut:
    """Release the breaker's hold; the flag stays off until set."""
    return _out(await control.reset_breaker(body.reason, body.actor))
