"""Staff's part of the members' app on the admin API: invite a member, stop a member's phone."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from central.api.deps import ADMIN
from central.clock import Clock
from central.services.invitations import MemberInvitations
from central.web.store import MembersData

_EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,189}$"


class InviteIn(BaseModel):
    """A member's invitation: e-mailed to ``email`` (their sign-in address from now on), or,
    without one, handed back to staff as a link to give the member (a card, the demo)."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, pattern=_EMAIL, max_length=254)


def router(invitations: MemberInvitations, data: MembersData, clock: Clock) -> APIRouter:
    """Admin endpoints, behind the admin token like every admin route."""
    routes = APIRouter(dependencies=ADMIN)

    @routes.post("/members/{member_id}/invite")
    async def invite(member_id: str, body: InviteIn) -> dict[str, str]:
        return await invitations.invite(member_id, body.email)

    @routes.post("/members/{member_id}/devices/{device_id}/revoke")
    async def revoke(member_id: str, device_id: str) -> dict[str, str]:
        if not await data.revoke_device(device_id, member_id, clock.now()):
            raise HTTPException(404, detail={"reason": "UNKNOWN_DEVICE"})
        return {"device_id": device_id, "status": "revoked"}

    return routes
