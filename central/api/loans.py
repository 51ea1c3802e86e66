"""Admin API for loans: which items are overdue, with whom, and by how long."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from central.api.deps import ADMIN
from central.clock import Clock
from central.storage.base import Store


class OverdueOut(BaseModel):
    """One item kept past its due time."""

    model_config = ConfigDict(extra="forbid")

    member_id: str = Field(description="Who has it.")
    member_name: str = Field(description="Their name, to call them.")
    item_id: str = Field(description="The item.")
    item_name: str = Field(description="What it is.")
    checked_out_at: datetime = Field(description="When it was checked out.")
    due_at: datetime = Field(description="When it was due back.")
    days_late: int = Field(description="Whole days past due (0 on the first day).")


def loans_router(store: Store, clock: Clock) -> APIRouter:
    """Routes under ``/loans``, each behind the admin token."""
    router = APIRouter(dependencies=ADMIN)

    @router.get("/loans/overdue")
    async def overdue() -> list[OverdueOut]:
        now = clock.now()
        return [
            OverdueOut(
                member_id=loan.member_id,
                member_name=loan.member_name,
                item_id=loan.item_id,
                item_name=loan.item_name,
                checked_out_at=loan.checked_out_at,
                due_at=loan.due_at,
                days_late=(now - loan.due_at).days,
            )
            for loan in await store.overdue_loans(now)
        ]

    return router
