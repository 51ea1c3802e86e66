"""``/staff-accounts``: admins invite staff to the console and switch accounts off (admin token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from central.api.deps import ADMIN
from central.api.text import Text
from central.services.staff import Role, StaffAccounts


class StaffInviteIn(BaseModel):
    """A staff invitation: the account for ``email`` in ``role``, and its sign-in link."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254, description="Where the sign-in link goes.")
    name: Text = Field(default="", max_length=80, description="Their name, for the audit log.")
    role: Role = Field(default=Role.VOLUNTEER, description="volunteer or admin.")
    mail: bool = Field(default=True, description="E-mail the link; false: hand it back.")


def router(accounts: StaffAccounts) -> APIRouter:
    """Admin endpoints for staff accounts, behind the admin token."""
    routes = APIRouter(prefix="/staff-accounts", dependencies=ADMIN)

    @routes.post("/invite", status_code=201)
    async def invite(body: StaffInviteIn) -> dict[str, Any]:
        invited = await accounts.invite(body.email, body.name, body.role, mail=body.mail)
        out: dict[str, Any] = {
            "staff_id": invited.staff_id,
            "email": invited.email,
            "role": invited.role.value,
            "status": "sent" if invited.link is None else "link",
        }
        if invited.link is not None:
            out["link"] = invited.link
        return out

    @routes.get("")
    async def list_staff() -> list[dict[str, Any]]:
        return [
            {
                "staff_id": s.staff_id,
                "name": s.name,
                "email": s.email,
                "role": s.role.value,
                "disabled": s.disabled,
            }
            for s in await accounts.data.accounts()
        ]

    @routes.post("/{staff_id}/disable")
    async def disable(staff_id: str) -> dict[str, Any]:
        await accounts.disable(staff_id)
        return {"staff_id": staff_id, "disabled": True}

    return routes
