"""Staff accounts: who may use the staff console, in which role, and their invitations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from central.clock import Clock
from central.services.refusals import Refusal, RefusedError
from central.storage.base import AuditEntry, Store
from central.tokens import new_id
from central.web.credentials import Credentials, SqlHooks, Tables
from central.web.mail import Mailer
from central.web.signin import mint_link, send_link

# Where the console lives on central's HTTP app; its sign-in links point here.
CONSOLE_BASE = "/staff"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")


class Role(StrEnum):
    """What a staff member may do: everyday library work, or that plus the fleet and flag."""

    VOLUNTEER = "volunteer"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether this role covers what ``needed`` guards (admin covers volunteer)."""
        return self is Role.ADMIN or needed is Role.VOLUNTEER


@dataclass(frozen=True, slots=True)
class StaffMember:
    """One staff account."""

    staff_id: str
    name: str
    email: str
    role: Role
    disabled: bool


STAFF_TABLES = Tables(
    "staff_tickets",
    "staff_passkeys",
    "staff_sessions",
    "staff_id",
    # A disabled account's sessions and passkeys stop working at once.
    live="staff_id IN (SELECT staff_id FROM staff WHERE NOT disabled)",
)


class StaffData(Credentials):
    """Staff rows and their credentials, through a store's statement hooks."""

    def __init__(self, store: SqlHooks) -> None:
        super().__init__(store, STAFF_TABLES)

    async def member_by_email(self, email: str) -> str | None:
        """The enabled staff account signing in with ``email``."""
        row = await self._s._read_one(
            "SELECT staff_id FROM staff WHERE email = ? AND NOT disabled", (email,)
        )
        return None if row is None else str(row[0])

    async def member_name(self, member_id: str) -> str | None:
        """A staff member's name."""
        found = await self.account(member_id)
        return None if found is None else found.name

    async def account(self, staff_id: str) -> StaffMember | None:
        """One staff account as stored now (role and switch read fresh on every request)."""
        row = await self._s._read_one(
            "SELECT staff_id, name, email, role, disabled FROM staff WHERE staff_id = ?",
            (staff_id,),
        )
        return None if row is None else _member(row)

    async def accounts(self) -> list[StaffMember]:
        """Every staff account, by name."""
        rows = await self._s._read_all(
            "SELECT staff_id, name, email, role, disabled FROM staff ORDER BY name", ()
        )
        return [_member(r) for r in rows]

    async def upsert(self, email: str, name: str, role: Role, now: datetime) -> str:
        """Create the account for ``email`` or set its name and role (and enable it)."""
        async with self._s._rollout_tx() as tx:
            row = await self._s._tx_one(tx, "SELECT staff_id FROM staff WHERE email = ?", (email,))
            if row is not None:
                await self._s._tx_exec(
                    tx,
                    "UPDATE staff SET name = ?, role = ?, disabled = ? WHERE staff_id = ?",
                    (name, role.value, False, row[0]),
                )
                return str(row[0])
            staff_id = f"S-{new_id()[:12].upper()}"
            await self._s._tx_exec(
                tx,
                "INSERT INTO staff (staff_id, name, email, role, disabled, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (staff_id, name, email, role.value, False, now),
            )
            return staff_id

    async def set_disabled(self, staff_id: str, disabled: bool) -> bool:
        """Switch an account off (or on again); False if there is no such account."""
        async with self._s._rollout_tx() as tx:
            changed = await self._s._tx_exec(
                tx, "UPDATE staff SET disabled = ? WHERE staff_id = ?", (disabled, staff_id)
            )
        return changed == 1


def _member(row: tuple[object, ...]) -> StaffMember:
    return StaffMember(str(row[0]), str(row[1]), str(row[2]), Role(str(row[3])), bool(row[4]))


@dataclass(frozen=True, slots=True)
class Invited:
    """An invitation: the account, and the link when it was handed back instead of mailed."""

    staff_id: str
    email: str
    role: Role
    link: str | None


@dataclass(frozen=True)
class StaffAccounts:
    """Inviting and switching off staff on one central, each change audited as ``actor``."""

    data: StaffData
    store: Store
    clock: Clock
    mailer: Mailer | None
    origin: str
    actor: str

    async def invite(self, email: str, name: str, role: Role, *, mail: bool = True) -> Invited:
        """Create (or re-role) the account and e-mail it a one-time console sign-in link.

        Without a mailer (or ``mail`` False) the link is handed back for the admin to pass on.
        """
        address = email.strip().lower()
        if not _EMAIL.match(address):
            raise RefusedError(Refusal.INVALID, "not an e-mail address")
        now = self.clock.now()
        staff_id = await self.data.upsert(address, name.strip() or address, role, now)
        async with self.store.write() as tx:
            await tx.audit(
                AuditEntry(
                    now, self.actor, "staff.invite", detail={"staff_id": staff_id, "role": role}
                )
            )
        if mail and self.mailer is not None:
            await send_link(
                self.data,
                self.mailer,
                self.origin,
                self.clock,
                staff_id,
                address,
                base=CONSOLE_BASE,
            )
            return Invited(staff_id, address, role, None)
        link = await mint_link(self.data, self.origin, self.clock, staff_id, base=CONSOLE_BASE)
        return Invited(staff_id, address, role, link)

    async def disable(self, staff_id: str) -> None:
        """Switch an account off: its sessions and passkeys stop at once."""
        if not await self.data.set_disabled(staff_id, True):
            raise RefusedError(Refusal.NOT_FOUND, f"no staff account {staff_id}")
        async with self.store.write() as tx:
            await tx.audit(
                AuditEntry(
                    self.clock.now(), self.actor, "staff.disable", detail={"staff_id": staff_id}
                )
            )
