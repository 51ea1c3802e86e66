"""Why an application service said no, and the one way a refused admin write is audited.

A refusal is a :class:`Refusal` value; :class:`RefusedError` carries it out of a service so any
surface (the admin API, a staff page) turns it into its own answer in one place.
"""

from __future__ import annotations

from collections.abc import Awaitable
from enum import StrEnum
from typing import Any, TypeVar

from central.clock import Clock
from central.errors import CentralError, StorageError
from central.storage.base import AuditEntry, ImportRefusedError, Store

_T = TypeVar("_T")


class Refusal(StrEnum):
    """Why a service refused: the surface picks its status (404, 409) from this alone."""

    NOT_FOUND = "NOT_FOUND"
    INVALID = "INVALID"
    CONFLICT = "CONFLICT"
    MEMBER_SUSPENDED = "MEMBER_SUSPENDED"
    FORBIDDEN = "FORBIDDEN"
    RATE_LIMITED = "RATE_LIMITED"
    UNCONFIRMED = "UNCONFIRMED"  # recorded, but a system it depends on did not confirm it


class RefusedError(CentralError):
    """A service's expected refusal: the reason code and what to tell the caller."""

    def __init__(self, refusal: Refusal, detail: Any, *, retry_after_s: int | None = None) -> None:
        super().__init__(refusal.value, detail)
        self.refusal = refusal
        # The answer's body: a sentence, or a structured reason (import problems, codes).
        self.detail = detail
        self.retry_after_s = retry_after_s


async def audited(
    store: Store, clock: Clock, actor: str, work: Awaitable[_T], action: str, **subject: str
) -> _T:
    """Run one admin write; if the database refuses it, audit the attempt and raise RefusedError.

    The write rolled back, but the attempt is still an admin action worth a record: every
    refused write lands in the audit log the same way, as ``action`` with reason REFUSED.
    """
    try:
        return await work
    except (LookupError, StorageError) as exc:
        detail: dict[str, Any] = {"message": str(exc), **subject}
        body: Any = str(exc)
        if isinstance(exc, ImportRefusedError):
            problems = [
                {"row": p.row, "column": p.column, "message": p.message} for p in exc.problems
            ]
            body = {"message": str(exc), "problems": problems}
            detail["problems"] = problems[:20]  # enough to see what went wrong
        async with store.write() as tx:
            await tx.audit(
                AuditEntry(
                    clock.now(),
                    actor,
                    action,
                    "REFUSED",
                    item_id=subject.get("item_id"),
                    member_id=subject.get("member_id"),
                    kiosk_id=subject.get("kiosk_id"),
                    detail=detail,
                )
            )
        # NotFoundError, and a store's plain LookupError, both mean "no such thing".
        refusal = Refusal.NOT_FOUND if isinstance(exc, LookupError) else Refusal.CONFLICT
        raise RefusedError(refusal, body) from exc
