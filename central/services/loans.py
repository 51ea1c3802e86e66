"""Loans as staff and admins look at them: who has kept which item past its due time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from central.clock import Clock
from central.storage.base import Store


class OverdueLoan(BaseModel):
    """One item kept past its due time."""

    model_config = ConfigDict(extra="forbid")

    member_id: str = Field(description="Who has it.")
    member_name: str = Field(description="Their name, to call them.")
    item_id: str = Field(description="The item.")
    item_name: str = Field(description="What it is.")
    checked_out_at: datetime = Field(description="When it was checked out.")
    due_at: datetime = Field(description="When it was due back.")
    days_late: int = Field(description="Whole days past due (0 on the first day).")


@dataclass(frozen=True)
class Loans:
    """Loans on one central instance."""

    store: Store
    clock: Clock

    async def overdue(self) -> list[OverdueLoan]:
        """Items kept past their due time, as the store orders them (most overdue first)."""
        now = self.clock.now()
        return [
            OverdueLoan(
                member_id=loan.member_id,
                member_name=loan.member_name,
                item_id=loan.item_id,
                item_name=loan.item_name,
                checked_out_at=loan.checked_out_at,
                due_at=loan.due_at,
                days_late=(now - loan.due_at).days,
            )
            for loan in await self.store.overdue_loans(now)
        ]
