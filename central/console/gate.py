"""Who may do what in the console: the signed-in staff member, their role, CSRF on writes.

Every console route but sign-in depends on :meth:`Gate.need` with a role; the role and the
account's switch are read from the database on every request, so a demotion or a disabled
account takes effect on the next click. A refusal for want of a role is audited with the
staff member's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, HTTPException, Request

from central.clock import Clock
from central.services.staff import Role, StaffData, StaffMember
from central.storage.base import AuditEntry, Store
from central.web.auth import Auth
from central.web.credentials import WebSession

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class NotSignedInError(Exception):
    """No staff session: pages go to the sign-in page, scripts get a 401."""


@dataclass(frozen=True, slots=True)
class Staff:
    """The staff member behind a request and their session's CSRF token."""

    account: StaffMember
    csrf: str

    @property
    def actor(self) -> str:
        """How the audit log names them."""
        return f"staff:{self.account.name}"


class Gate:
    """Resolves the staff member of a request and enforces roles and CSRF."""

    def __init__(self, auth: Auth, data: StaffData, store: Store, clock: Clock) -> None:
        self.auth = auth
        self._data = data
        self._store = store
        self._clock = clock

    async def current(self, request: Request) -> Staff | None:
        """The enabled staff member signed in on this request, if any."""
        session = await self.auth.current(request)
        if session is None:
            return None
        account = await self._data.account(session.member_id)
        if account is None or account.disabled:
            return None
        return Staff(account, session.csrf)

    def need(self, role: Role) -> Any:
        """A route dependency: a signed-in staff member whose role covers ``role``."""

        async def check(request: Request) -> Staff:
            staff = await self.current(request)
            if staff is None:
                raise NotSignedInError
            if request.method in _WRITES:
                # The same check as the members' app: Origin when sent, then the token.
                sent = request.headers.get("x-csrf-token")
                if sent is None and request.headers.get("content-type", "").startswith(_FORMS):
                    field = (await request.form()).get("csrf")
                    sent = field if isinstance(field, str) else None
                self.auth.check_csrf(request, WebSession(staff.account.staff_id, staff.csrf), sent)
            if not staff.account.role.allows(role):
                await self._refused(staff, request)
                raise HTTPException(403, detail={"reason": "ROLE_REQUIRED", "role": role.value})
            return staff

        check.__name__ = f"need_{role.value}"
        return Depends(check)

    async def _refused(self, staff: Staff, request: Request) -> None:
        async with self._store.write() as tx:
            await tx.audit(
                AuditEntry(
                    self._clock.now(),
                    staff.actor,
                    "staff.refused",
                    "ROLE_REQUIRED",
                    detail={
                        "staff_id": staff.account.staff_id,
                        "role": staff.account.role.value,
                        "method": request.method,
                        "path": request.url.path[:200],
                    },
                )
            )
