"""The rows the storage layer hands out: plain values, importing nothing of central's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from broker.messages import Availability, KioskConfig, Reason


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
    renewals: int = 0


@dataclass(frozen=True, slots=True)
class ClosedLoan:
    """A loan a return scan closed (what a problem report after it is about)."""

    checkout_id: int
    item_id: str
    member_id: str
    returned_at: datetime


@dataclass(frozen=True, slots=True)
class Terms:
    """An item's loan terms: its category's policy over the library's circulation settings."""

    category: str | None  # None: the default policy (the item's own loan_days)
    loan_days: int
    max_renewals: int = 2
    max_out: int | None = None  # items of this category one member may have out
    needs_training: bool = False
    needs_agreement: bool = False
    inspection_required: bool = False
    buffer_hours: int = 0  # kept free before a reservation starts
    hold_hours: int = 48
    overdue_block_days: int = 14  # 0: an overdue loan never blocks a checkout
    renew_grace_hours: int = 24
    reservation_min_hours: int = 24


class HoldState(StrEnum):
    """Where a hold stands (the holds.state column)."""

    WAITING = "waiting"
    READY = "ready"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class HoldRow:
    """One member's place in an item's waitlist."""

    hold_id: int
    item_id: str
    member_id: str
    placed_at: datetime
    state: HoldState
    ready_at: datetime | None = None
    notified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReservationRow:
    """An item booked for a member for a period."""

    reservation_id: int
    item_id: str
    member_id: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Standing:
    """What a member's record says for a checkout of one category."""

    trained: bool = True  # holds a training record for the item's category
    agreed: bool = True  # accepted the current lending agreement (True if there is none)
    oldest_due: datetime | None = None  # the due time of their most overdue open loan
    out_in_category: int = 0


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


# --- the fleet: enrolment claims and kiosk configurations ---


@dataclass(frozen=True, slots=True)
class Claim:
    """What a used enrolment code gave: the kiosk it enrols, or why it was refused."""

    kiosk_id: str
    shelf_id: str
    refusal: Reason | None = None


# Builds the next configuration from the current one (the store bumps the version).
Change = Callable[[KioskConfig], KioskConfig]


@dataclass(frozen=True, slots=True)
class KioskRecord:
    """An enrolled kiosk as admins see it: its configuration and standing."""

    config: KioskConfig
    retired: bool
    blocked_until: datetime | None
    return_point: bool = False  # takes returns of every shelf's items (central only)


# --- the rollout flag and the circuit breaker's window ---


class FlagMode(StrEnum):
    """How far checkout is rolled out."""

    OFF = "off"
    ALLOW_LIST = "allow-list"
    PERCENTAGE = "percentage"
    ON = "on"


@dataclass(frozen=True, slots=True)
class FlagSetting:
    """What an admin asks the flag to be."""

    mode: FlagMode
    members: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    kiosks: tuple[str, ...] = ()
    percent: int = 0


@dataclass(frozen=True, slots=True)
class FlagRow:
    """The flag as stored, with the circuit breaker's state beside it."""

    setting: FlagSetting
    reason: str
    changed_by: str
    changed_at: datetime
    tripped_at: datetime | None
    trip_reason: str | None
    breaker_reset_at: datetime | None

    @property
    def tripped(self) -> bool:
        """Whether the circuit breaker holds checkout off."""
        return self.tripped_at is not None


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """What the circuit breaker judges: code scans, those that show a system fault, alerts.

    ``kiosk_errors`` splits ``errors`` by kiosk (only kiosks with errors; messages dropped
    unanswered count under the kiosk whose topic they came on). ``security_alerts`` counts
    alerts by where they come from: every alert about one kiosk counts once.
    """

    attempts: int
    errors: int
    security_alerts: int
    kiosk_errors: tuple[int, ...] = ()


# --- signed releases and their rollouts ---


class RolloutState(StrEnum):
    """Where a rollout stands."""

    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"  # by itself: too many kiosks of the cohort failed
    ABORTED = "aborted"  # by an admin
    DONE = "done"  # every kiosk of the cohort runs the release


@dataclass(frozen=True, slots=True)
class ReleaseRow:
    """A published release (its artifact is read separately)."""

    version: str
    sha256: str
    size: int
    signature: str
    notes: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RolloutRow:
    """A rollout of one release to a cohort of kiosks."""

    rollout_id: int
    version: str
    state: RolloutState
    percent: int
    kiosks: tuple[str, ...]
    abort_percent: int
    abort_min: int
    reason: str
    created_by: str
    created_at: datetime
    changed_at: datetime
    halt_reason: str | None


@dataclass(frozen=True, slots=True)
class KioskUpdateRow:
    """One kiosk's part in one rollout, as central last learnt it."""

    kiosk_id: str
    state: str
    reason: str | None
    offers: int
    offered_at: datetime | None
    changed_at: datetime
