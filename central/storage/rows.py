"""The rows the storage layer hands out: plain values, importing nothing of central's."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from broker.messages import Availability


@dataclass(frozen=True, slots=True)
class KioskRow:
    """An enrolled kiosk."""

    kiosk_id: str
    shelf_id: str
    retired: bool
    blocked_until: datetime | None
    config_version: int
    session_timeout_s: float
    return_point: bool = False  # takes returns of every shelf's items, not only its own


@dataclass(frozen=True, slots=True)
class MemberRow:
    """A library member."""

    member_id: str
    name: str
    suspended: bool
    checkout_limit: int


@dataclass(frozen=True, slots=True)
class ItemRow:
    """A lendable item."""

    item_id: str
    shelf_id: str
    name: str
    label_version: int
    state: str  # available | maintenance | retired
    loan_days: int


@dataclass(frozen=True, slots=True)
class SessionRow:
    """An open checkout session at one kiosk."""

    session_id: int
    kiosk_id: str
    member_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CheckoutRow:
    """An open checkout of one item."""

    checkout_id: int
    item_id: str
    member_id: str
    checked_out_at: datetime
    due_at: datetime


@dataclass(frozen=True, slots=True)
class OverdueLoan:
    """An open checkout past its due time."""

    member_id: str
    member_name: str
    item_id: str
    item_name: str
    checked_out_at: datetime
    due_at: datetime


class PassUse(StrEnum):
    """What happened when a pass was presented for consumption."""

    CONSUMED = "consumed"
    ALREADY_USED = "already_used"
    INVALIDATED = "invalidated"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the append-only audit log."""

    at: datetime
    actor: str  # "kiosk:<id>" or "admin:<name>" or "system"
    action: str
    reason: str | None = None
    kiosk_id: str | None = None
    member_id: str | None = None
    item_id: str | None = None
    event_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShelfRow:
    """A shelf and how many items live on it."""

    shelf_id: str
    name: str
    items: int = 0


_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class Edited(Generic[_R]):
    """One admin edit: the row before and after, and the availability it republished."""

    before: _R
    after: _R
    availability: Availability | None = None
    moved_from: str | None = None  # the shelf an item left, whose retained copy is stale


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad row of a bulk import: which row (0-based), which column, and why."""

    row: int
    column: str
    message: str
