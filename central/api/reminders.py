"""``/reminders``: reminder settings, the delivery log, and a round on demand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from central.api.deps import ADMIN, RemindersService
from central.services.reminders import (
    KEEP_DAYS,
    DeliveryShown,
    PruneShown,
    RoundShown,
    SettingsPatch,
    SettingsShown,
)

router = APIRouter(prefix="/reminders", dependencies=ADMIN)


@router.get("/settings")
async def settings(reminders: RemindersService) -> SettingsShown:
    """The reminder settings now."""
    return await reminders.settings()


@router.patch("/settings")
async def change_settings(reminders: RemindersService, patch: SettingsPatch) -> SettingsShown:
    """Change some reminder settings (audited)."""
    return await reminders.change_settings(patch)


@router.get("/log")
async def delivery_log(
    reminders: RemindersService,
    member: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
) -> list[DeliveryShown]:
    """The delivery log, newest first, by member and status."""
    return await reminders.log(member, status)


@router.post("/run")
async def run_now(reminders: RemindersService) -> RoundShown:
    """One round now: claim what is due and send what waits."""
    return await reminders.run_now()


@router.post("/prune")
async def prune(
    reminders: RemindersService,
    keep_days: Annotated[int, Query(ge=3, le=3650)] = KEEP_DAYS,
) -> PruneShown:
    """Forget spent claims and logged mails older than ``keep_days`` (audited).

    Central does this once a day with the default; fewer days shrink the log sooner.
    Never below 3: a day's mail is claimed by its local date, which a time zone can put
    a day either side of UTC.
    """
    return await reminders.prune_now(keep_days)
