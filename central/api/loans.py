"""``/loans``: which items are overdue, with whom, and by how long."""

from __future__ import annotations

from fastapi import APIRouter

from central.api.deps import ADMIN, BrowseService, LoansService
from central.api.pages import PageOut, page_out
from central.services.loans import OverdueLoan

router = APIRouter(prefix="/loans", dependencies=ADMIN)


@router.get("/overdue")
async def overdue(loans: LoansService) -> list[OverdueLoan]:
    """Items kept past their due time, most overdue first."""
    return await loans.overdue()


@router.get("/open")
async def open_loans(browse: BrowseService, q: str = "", page_no: int = 1) -> PageOut:
    """A page of 50 open loans (item or member holding ``q``), soonest due first."""
    return page_out(await browse.loans(q[:80], page_no))
