"""``/reservations``: items booked for members for a period."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from broker.ids import ID_PATTERN
from central.api.deps import ADMIN, CirculationService
from central.services.circulation import Reservation

router = APIRouter(prefix="/reservations", dependencies=ADMIN)


class ReservationIn(BaseModel):
    """A booking to make."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(pattern=ID_PATTERN, description="The item to book.")
    member_id: str = Field(pattern=ID_PATTERN, description="Who books it.")
    starts_at: AwareDatetime = Field(description="When the member collects it.")
    ends_at: AwareDatetime = Field(description="When it is due back.")


@router.post("", status_code=201)
async def book(booking: ReservationIn, circulation: CirculationService) -> Reservation:
    """Book an item; refused (409) if it clashes with a booking or a loan."""
    return await circulation.reserve(
        booking.item_id, booking.member_id, booking.starts_at, booking.ends_at
    )


@router.get("")
async def upcoming(
    circulation: CirculationService, item_id: str | None = None
) -> list[Reservation]:
    """Bookings not yet over, soonest first."""
    return await circulation.reservations(item_id)


@router.delete("/{reservation_id}", status_code=204)
async def cancel(reservation_id: int, circulation: CirculationService) -> Response:
    """Cancel a booking."""
    await circulation.cancel_reservation(reservation_id)
    return Response(status_code=204)
