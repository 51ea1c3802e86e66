"""``/tickets``: repair tickets (a problem reported at return, or found by staff)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from broker.ids import ID_PATTERN
from central.api.deps import ADMIN, CirculationService
from central.api.text import Text
from central.services.circulation import Ticket

router = APIRouter(prefix="/tickets", dependencies=ADMIN)


class TicketIn(BaseModel):
    """A problem staff found."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(pattern=ID_PATTERN, description="The item.")
    note: Text = Field(default="", max_length=500, description="What is wrong.")


class CloseIn(BaseModel):
    """How a ticket ends."""

    model_config = ConfigDict(extra="forbid")

    back_in_service: bool = Field(default=True, description="Back on its shelf (else kept).")


@router.post("", status_code=201)
async def report(ticket: TicketIn, circulation: CirculationService) -> Ticket:
    """Put the item in maintenance and open a ticket."""
    return await circulation.report_problem(ticket.item_id, note=ticket.note)


@router.get("")
async def listing(circulation: CirculationService, include_closed: bool = False) -> list[Ticket]:
    """Open tickets (``include_closed``: closed ones too), newest first."""
    return await circulation.tickets(open_only=not include_closed)


@router.post("/{ticket_id}/close", status_code=204)
async def close(ticket_id: int, body: CloseIn, circulation: CirculationService) -> Response:
    """Close a ticket; the item goes back to its shelf and its waitlist unless kept."""
    await circulation.close_ticket(ticket_id, back_in_service=body.back_in_service)
    return Response(status_code=204)
