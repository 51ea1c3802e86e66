"""``/holds``: an item's waitlist; place, list and cancel holds."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from broker.ids import ID_PATTERN
from central.api.deps import ADMIN, CirculationService
from central.services.circulation import Hold

router = APIRouter(prefix="/holds", dependencies=ADMIN)


class HoldIn(BaseModel):
    """A hold to place."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(pattern=ID_PATTERN, description="The item wanted.")
    member_id: str = Field(pattern=ID_PATTERN, description="Who waits for it.")


@router.post("", status_code=201)
async def place(hold: HoldIn, circulation: CirculationService) -> Hold:
    """Put a member at the end of an item's waitlist (ready at once if it is on the shelf)."""
    return await circulation.place_hold(hold.item_id, hold.member_id, "admin")


@router.get("")
async def queue(
    circulation: CirculationService,
    item_id: str | None = None,
    member_id: str | None = None,
    include_closed: bool = False,
) -> list[Hold]:
    """Open holds (``include_closed``: closed ones too), in queue order per item."""
    return await circulation.holds(
        item_id=item_id, member_id=member_id, open_only=not include_closed
    )


class ToldIn(BaseModel):
    """How staff told a member their hold is ready."""

    model_config = ConfigDict(extra="forbid")

    how: str = Field(default="by staff", min_length=1, max_length=80)


@router.post("/{hold_id}/told", status_code=204)
async def told(hold_id: int, body: ToldIn, circulation: CirculationService) -> Response:
    """Record that the member was told (by phone, at the desk): the hold's clock starts."""
    await circulation.hold_told(hold_id, body.how)
    return Response(status_code=204)


@router.delete("/{hold_id}", status_code=204)
async def cancel(hold_id: int, circulation: CirculationService) -> Response:
    """Cancel a hold; a ready one passes the item to the next member."""
    await circulation.cancel_hold(hold_id)
    return Response(status_code=204)
