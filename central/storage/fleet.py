"""Kiosk enrolment, retirement and broker accounts, written once for both backends."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from broker.auth import Account, Role
from broker.messages import Reason
from central.errors import StorageError
from central.storage.admin import AdminTx
from central.storage.base import AuditEntry
from central.storage.hooks import BackendHooks
from central.storage.rows import Claim


class FleetWrites(BackendHooks):
    """Mixin for a store: each backend provides ``_admin_tx`` (see central/storage/admin.py)."""

    async def broker_accounts(self) -> Sequence[Account]:
        """Every broker user, with each kiosk's shelf (the ACL's availability rule)."""
        async with self._admin_tx() as tx:
            rows = await tx.fetch(
                "SELECT a.username, a.role, a.password_hash, k.shelf_id"
                " FROM broker_accounts a LEFT JOIN kiosks k ON k.kiosk_id = a.username"
                " ORDER BY a.username",
                (),
            )
        return [Account(r[0], Role(r[1]), r[2], r[3]) for r in rows]

    async def set_central_account(
        self, username: str, password_hash: str, now: datetime, actor: str
    ) -> None:
        """Create or re-key a central instance's broker user."""
        async with self._admin_tx() as tx:
            await _upsert(tx, username, Role.CENTRAL, password_hash, now)
            await tx.tx.audit(AuditEntry(now, actor, "broker.central", detail={"user": username}))

    async def enrol_kiosk(
        self,
        kiosk_id: str,
        shelf_id: str,
        password_hash: str,
        now: datetime,
        actor: str,
        *,
        session_timeout_s: float = 60.0,
        rotate: bool = False,
    ) -> None:
        """Record a kiosk and its broker user; ``rotate`` re-keys an enrolled one."""
        async with self._admin_tx() as tx:
            await _enrol(tx, kiosk_id, shelf_id, password_hash, now, session_timeout_s, rotate)
            await tx.tx.audit(
                AuditEntry(
                    now,
                    actor,
                    "kiosk.rotate" if rotate else "kiosk.enrol",
                    kiosk_id=kiosk_id,
                    detail={"shelf_id": shelf_id},
                )
            )

    async def retire_kiosk(self, kiosk_id: str, now: datetime, actor: str, reason: str) -> None:
        """Mark a kiosk retired and delete its broker user; its history stays."""
        async with self._admin_tx() as tx:
            rows = await tx.fetch(
                "SELECT retired FROM kiosks WHERE kiosk_id = ?", (kiosk_id,), lock=True
            )
            if not rows:
                raise LookupError(f"no kiosk {kiosk_id}")
            if rows[0][0]:
                raise StorageError(f"kiosk {kiosk_id} is already retired")
            await tx.run("UPDATE kiosks SET retired = ? WHERE kiosk_id = ?", (True, kiosk_id))
            await tx.run("DELETE FROM broker_accounts WHERE username = ?", (kiosk_id,))
            await tx.run(
                "UPDATE sessions SET closed_at = ? WHERE kiosk_id = ? AND closed_at IS NULL",
                (now, kiosk_id),
            )
            await tx.tx.audit(
                AuditEntry(now, actor, "kiosk.retire", kiosk_id=kiosk_id, detail={"why": reason})
            )

    async def issue_enrolment(
        self,
        claim_id: str,
        kiosk_id: str,
        shelf_id: str,
        now: datetime,
        expires_at: datetime,
        actor: str,
    ) -> None:
        """Record a one-time enrolment code for a kiosk that is not enrolled yet."""
        async with self._admin_tx() as tx:
            if await tx.fetch("SELECT 1 FROM kiosks WHERE kiosk_id = ?", (kiosk_id,)):
                raise StorageError(f"kiosk {kiosk_id} is already enrolled")
            if not await tx.fetch("SELECT 1 FROM shelves WHERE shelf_id = ?", (shelf_id,)):
                raise StorageError(f"no shelf {shelf_id}")
            await tx.run(
                "INSERT INTO enrolments (claim_id, kiosk_id, shelf_id, issued_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (claim_id, kiosk_id, shelf_id, now, expires_at),
            )
            await tx.tx.audit(
                AuditEntry(
                    now,
                    actor,
                    "kiosk.enrol_code",
                    kiosk_id=kiosk_id,
                    detail={"shelf_id": shelf_id, "expires_at": expires_at.isoformat()},
                )
            )

    async def claim_enrolment(
        self, claim_id: str, password_hash: str, now: datetime, actor: str
    ) -> Claim:
        """Use an enrolment code once: enrol its kiosk, or say why not (audited either way)."""
        async with self._admin_tx() as tx:
            used = await tx.run(
                "UPDATE enrolments SET claimed_at = ?"
                " WHERE claim_id = ? AND claimed_at IS NULL AND expires_at > ?",
                (now, claim_id, now),
            )
            rows = await tx.fetch(
                "SELECT kiosk_id, shelf_id, claimed_at FROM enrolments WHERE claim_id = ?",
                (claim_id,),
            )
            if not rows:
                claim = Claim("", "", Reason.UNKNOWN_CODE)
            elif not used:
                kiosk_id, shelf_id, claimed_at = rows[0]
                refusal = Reason.ALREADY_USED if claimed_at is not None else Reason.EXPIRED
                claim = Claim(kiosk_id, shelf_id, refusal)
            else:
                claim = Claim(rows[0][0], rows[0][1])
                await _enrol(tx, claim.kiosk_id, claim.shelf_id, password_hash, now, 60.0, False)
            await tx.tx.audit(
                AuditEntry(
                    now,
                    actor,
                    "kiosk.claim",
                    reason=claim.refusal.value if claim.refusal else "ENROLLED",
                    kiosk_id=claim.kiosk_id or None,
                    detail={"claim_id": claim_id, "shelf_id": claim.shelf_id},
                )
            )
        return claim

    async def refuse_claim(self, now: datetime, actor: str, reason: Reason) -> None:
        """Audit an enrolment code that was not ours or not one (forged, garbled)."""
        async with self._admin_tx() as tx:
            await tx.tx.audit(AuditEntry(now, actor, "kiosk.claim", reason=reason.value))


async def _upsert(
    tx: AdminTx, username: str, role: Role, password_hash: str, now: datetime
) -> None:
    await tx.run(
        "INSERT INTO broker_accounts (username, role, password_hash, updated_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (username) DO UPDATE"
        " SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
        (username, role.value, password_hash, now),
    )


async def _enrol(
    tx: AdminTx,
    kiosk_id: str,
    shelf_id: str,
    password_hash: str,
    now: datetime,
    session_timeout_s: float,
    rotate: bool,
) -> None:
    rows = await tx.fetch("SELECT retired FROM kiosks WHERE kiosk_id = ?", (kiosk_id,), lock=True)
    if rows and rows[0][0]:
        raise StorageError(f"kiosk {kiosk_id} is retired; enrol the replacement under a new id")
    if rows and not rotate:
        raise StorageError(f"kiosk {kiosk_id} is already enrolled (re-enrol to rotate)")
    if not rows and rotate:
        raise LookupError(f"no kiosk {kiosk_id} to re-enrol")
    if not rows:
        if not await tx.fetch("SELECT 1 FROM shelves WHERE shelf_id = ?", (shelf_id,)):
            raise StorageError(f"no shelf {shelf_id}")
        await tx.run(
            "INSERT INTO kiosks (kiosk_id, shelf_id, session_timeout_s, created_at)"
            " VALUES (?, ?, ?, ?)",
            (kiosk_id, shelf_id, session_timeout_s, now),
        )
    await _upsert(tx, kiosk_id, Role.KIOSK, password_hash, now)


# Defined in central/storage/rows.py; it is still importable from here.
__all__ = ["Claim"]
