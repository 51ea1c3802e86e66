"""``/loans``: which items are overdue, with whom, and by how long."""

from __future__ import annotations

from fastapi import APIRouter

from central.api.deps import ADMIN, LoansService
from central.services.loans import OverdueLoan

router = APIRouter(prefix="/loans", dependencies=ADMIN)


@router.get("/overdue")
async def overdue(loans: LoansService) -> list[OverdueLoan]:
    """Items kept past their due time, most overdue first."""
    return await loans.overdue()
