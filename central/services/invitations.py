"""Inviting a member to the members' app: their sign-in address and a one-time link."""

from __future__ import annotations

from dataclasses import dataclass

from central.clock import Clock
from central.services.refusals import Refusal, RefusedError
from central.storage.base import AuditEntry, Store
from central.web.mail import Mailer
from central.web.signin import mint_link, send_link
from central.web.store import MembersData


@dataclass(frozen=True)
class MemberInvitations:
    """Members' app invitations on one central, each audited as ``actor``."""

    data: MembersData
    store: Store
    clock: Clock
    mailer: Mailer | None
    origin: str
    actor: str

    async def invite(self, member_id: str, email: str | None) -> dict[str, str]:
        """E-mail the member a sign-in link (``email`` becomes their address), or, without
        an address, hand the link back for staff to give them."""
        if await self.data.member_name(member_id) is None:
            raise RefusedError(Refusal.NOT_FOUND, {"reason": "UNKNOWN_MEMBER"})
        if self.mailer is None:
            raise RefusedError(Refusal.CONFLICT, {"reason": "MEMBERS_APP_OFF"})
        async with self.store.write() as tx:
            await tx.audit(
                AuditEntry(self.clock.now(), self.actor, "member.invite", member_id=member_id)
            )
        if email is None:
            link = await mint_link(self.data, self.origin, self.clock, member_id)
            return {"member_id": member_id, "status": "link", "link": link}
        address = email.strip().lower()
        await self.data.set_email(member_id, address)
        await send_link(self.data, self.mailer, self.origin, self.clock, member_id, address)
        return {"member_id": member_id, "email": address, "status": "sent"}
