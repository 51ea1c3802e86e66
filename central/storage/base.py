"""The storage interface the ledger and the admin API use; SQL lives behind it."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from broker.messages import Availability, KioskConfig, Verdict
from central.errors import StorageError

if TYPE_CHECKING:
    from broker.auth import Account
    from broker.messages import Reason

from central.storage.chain import ChainedRow, ChainHead
from central.storage.rows import (
    AuditEntry,
    Change,
    CheckoutRow,
    Claim,
    ClosedLoan,
    Edited,
    FlagRow,
    FlagSetting,
    HoldRow,
    HoldState,
    ItemRow,
    KioskRecord,
    KioskRow,
    KioskUpdateRow,
    MemberRow,
    OverdueLoan,
    PassUse,
    Problem,
    ReleaseRow,
    ReservationRow,
    RolloutRow,
    RolloutState,
    SessionRow,
    ShelfRow,
    Standing,
    Terms,
    WindowCounts,
)

_T = TypeVar("_T")


_SUBJECT = {
    "shelf": "shelf_id",
    "item": "item_id",
    "member": "member_id",
    "kiosk": "kiosk_id",
    "pass": "pass_id",
}


def refusal(entry: AuditEntry, *, duplicate: bool) -> str:
    """An admin write the constraints refused, said the way an admin would say it."""
    kind = entry.action.split(".", 1)[0]
    key = _SUBJECT.get(kind, "")
    ident = getattr(entry, key, None) or entry.detail.get(key, "?")
    if duplicate:
        return f"{kind} {ident} already exists"
    if "shelf_id" in entry.detail and kind != "shelf":
        return f"shelf {entry.detail['shelf_id']} does not exist"
    if kind == "pass":
        return f"member {entry.member_id} does not exist"
    return f"{kind} {ident} refers to something that does not exist"


class Tx(Protocol):
    """One write transaction: its locks are taken when it begins."""

    async def find_verdict(self, kiosk_id: str, event_id: str) -> Verdict | None:
        """The verdict already given to ``kiosk_id``'s event ``event_id``, if any.

        Event ids are minted by kiosks: they are unique per kiosk, not across the fleet.
        """

    async def save_verdict(
        self,
        verdict: Verdict,
        code_hash: str | None,
        scanned_at: datetime,
        payload: bytes | None = None,
    ) -> None:
        """Record that ``verdict.event_id`` was decided, as ``payload`` (its wire bytes)."""

    async def kiosk(self, kiosk_id: str) -> KioskRow | None:
        """An enrolled kiosk."""

    async def member(self, member_id: str) -> MemberRow | None:
        """A member."""

    async def item(self, item_id: str) -> ItemRow | None:
        """An item (locked for the rest of the transaction where the backend can)."""

    async def open_session(self, kiosk_id: str, now: datetime) -> SessionRow | None:
        """The session open at ``kiosk_id`` and not expired at ``now``."""

    async def close_sessions(self, kiosk_id: str, now: datetime) -> int:
        """Close every open session at ``kiosk_id``; how many were open."""

    async def consume_pass(
        self, pass_id: str, member_id: str, kiosk_id: str, now: datetime
    ) -> PassUse:
        """Mark a pass used, atomically; only the first caller gets CONSUMED."""

    async def start_session(
        self, kiosk_id: str, member_id: str, pass_id: str, now: datetime, expires_at: datetime
    ) -> SessionRow:
        """Open a session (at most one per pass, one open per kiosk)."""

    async def extend_session(self, session_id: int, expires_at: datetime) -> None:
        """Push an open session's idle deadline out."""

    async def open_checkout(self, item_id: str) -> CheckoutRow | None:
        """The open checkout of ``item_id``, if any."""

    async def open_checkout_count(self, member_id: str) -> int:
        """How many items ``member_id`` holds now."""

    async def insert_checkout(
        self,
        item_id: str,
        member_id: str,
        session_id: int,
        kiosk_id: str,
        event_id: str,
        now: datetime,
        due_at: datetime,
    ) -> None:
        """Open a checkout (the database refuses a second open one per item)."""

    async def close_checkout(
        self, checkout_id: int, returned_at: datetime, event_id: str, kiosk_id: str
    ) -> None:
        """Close an open checkout."""

    async def availability(self, item_id: str, now: datetime, *, bump: bool) -> Availability:
        """The item's availability message, its sequence bumped if it changed."""

    async def item_terms(self, item_id: str) -> Terms:
        """The item's loan terms (its category's policy over the library's settings)."""

    async def item_holds(self, item_id: str) -> tuple[HoldRow, ...]:
        """The item's open holds in queue order, locked (take after the item's row)."""

    async def next_reservation(self, item_id: str, now: datetime) -> ReservationRow | None:
        """The item's earliest booking that has not ended by ``now``."""

    async def standing(self, member_id: str, category: str | None, now: datetime) -> Standing:
        """What the member's record says for a checkout of ``category``."""

    async def place_hold(self, item_id: str, member_id: str, via: str, now: datetime) -> int:
        """Add a waiting hold at the end of the queue (one open hold per member and item)."""

    async def move_hold(self, hold_id: int, to: HoldState, now: datetime) -> None:
        """Move an open hold on; a hold no longer open (or not waiting, for READY) is a
        StorageError, so a hold is allocated or closed at most once."""

    async def renew_checkout(self, checkout_id: int, due_at: datetime) -> None:
        """Set an open loan's new due time and count the renewal."""

    async def closed_by(self, kiosk_id: str, return_event_id: str) -> ClosedLoan | None:
        """The loan the kiosk's return event closed, if it closed one."""

    async def open_ticket(
        self,
        item_id: str,
        now: datetime,
        *,
        kiosk_id: str | None = None,
        member_id: str | None = None,
        checkout_id: int | None = None,
        event_id: str | None = None,
        note: str = "",
    ) -> int:
        """Open a repair ticket (one per reporting event)."""

    async def set_state(self, item_id: str, state: str) -> None:
        """Put an item in a state; the caller republishes it."""

    async def audit(self, entry: AuditEntry) -> None:
        """Append one audit row."""

    async def rollout_flag(self) -> FlagRow:
        """The rollout flag as committed now (read inside the decision's transaction)."""

    async def bucket(self, key: str, now: datetime, full: float) -> tuple[float, datetime]:
        """A rate-limit bucket (created ``full`` at ``now``), locked for this transaction."""

    async def save_bucket(self, key: str, tokens: float, at: datetime) -> None:
        """Store a rate-limit bucket's level after this scan."""

    async def recent_failures(self, kiosk_id: str, since: datetime, reasons: Sequence[str]) -> int:
        """How many of ``kiosk_id``'s verdicts since ``since`` had one of ``reasons``."""

    async def set_blocked_until(self, kiosk_id: str, until: datetime | None) -> bool:
        """Block a kiosk until ``until`` (None unblocks); False if there is no such kiosk."""

    async def invalidate_passes(self, now: datetime) -> int:
        """Invalidate every pass neither used nor expired at ``now``; how many."""


class Store(Protocol):
    """A database central keeps its state in."""

    backend: str
    group_commit: bool  # whether a batch of events shares one transaction

    async def migrate(self) -> int:
        """Bring the schema to the newest version; the version now in force."""

    def is_conflict(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a refused write or a broken deadlock, worth one more try."""

    def is_unavailable(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the database cannot be used now (retry later, drop nothing),
        rather than that one event's data failed."""

    async def close(self) -> None:
        """Release the connection(s)."""

    def write(self) -> AbstractAsyncContextManager[Tx]:
        """A write transaction that takes its locks first and commits on exit."""

    async def run_write(self, work: Callable[[Tx], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``work`` inside one write transaction, in as few thread hops as the backend can."""

    def savepoint(self, tx: Tx) -> AbstractAsyncContextManager[None]:
        """A nested step that rolls back alone if it raises."""

    async def add_shelf(self, shelf_id: str, name: str, now: datetime, actor: str) -> None:
        """Create a shelf."""

    async def add_item(
        self, item_id: str, shelf_id: str, name: str, now: datetime, actor: str, loan_days: int = 14
    ) -> Availability:
        """Create an item on a shelf; its first availability, bumped in the same transaction."""

    async def add_member(
        self, member_id: str, name: str, now: datetime, actor: str, checkout_limit: int = 5
    ) -> None:
        """Create a member."""

    async def add_kiosk(
        self,
        kiosk_id: str,
        shelf_id: str,
        now: datetime,
        actor: str,
        session_timeout_s: float = 60.0,
    ) -> None:
        """Enrol a kiosk at a shelf."""

    async def issue_pass(
        self, pass_id: str, member_id: str, now: datetime, expires_at: datetime, actor: str
    ) -> None:
        """Record a pass so it can be consumed once (and invalidated)."""

    async def get_item(self, item_id: str) -> ItemRow | None:
        """An item, read-only."""

    async def get_member(self, member_id: str) -> MemberRow | None:
        """A member, read-only."""

    async def all_availability(self, now: datetime) -> Sequence[Availability]:
        """Every item's availability, for the retained broadcast at start."""

    async def kiosk_configs(self) -> Sequence[KioskConfig]:
        """Every active kiosk's configuration message."""

    async def audit_tail(self, limit: int) -> Sequence[AuditEntry]:
        """The newest audit rows, oldest first."""

    # --- library data edits, label reprints and bulk imports (central/storage/admin.py) ---

    async def list_shelves(self) -> Sequence[ShelfRow]:
        """Every shelf with how many items it holds, by shelf id."""

    async def list_members(self) -> Sequence[MemberRow]:
        """Every member, by member id."""

    async def edit_item(
        self, item_id: str, changes: dict[str, Any], now: datetime, actor: str
    ) -> Edited[ItemRow]:
        """Change an item's name, shelf, loan days or state, audited with before and after."""

    async def edit_shelf(
        self, shelf_id: str, changes: dict[str, Any], now: datetime, actor: str
    ) -> Edited[ShelfRow]:
        """Rename a shelf, audited with before and after."""

    async def edit_member(
        self, member_id: str, changes: dict[str, Any], now: datetime, actor: str
    ) -> Edited[MemberRow]:
        """Change a member's name, suspension or checkout limit, audited."""

    async def reprint_label(self, item_id: str, now: datetime, actor: str) -> ItemRow:
        """Bump an item's label version (revoking every printed copy), audited."""

    async def import_rows(
        self, kind: str, rows: Sequence[dict[str, Any]], now: datetime, actor: str
    ) -> Sequence[Availability]:
        """Add many shelves, items or members in one transaction, or none of them.

        Raises :class:`ImportRefusedError` listing every bad row. Returns the new items'
        availability (empty for shelves and members).
        """

    async def get_flag(self) -> FlagRow:
        """The rollout flag and the circuit breaker's state."""

    async def set_flag(
        self,
        setting: FlagSetting,
        reason: str,
        actor: str,
        now: datetime,
        *,
        action: str = "rollout.flag_set",
        while_tripped: bool = False,
    ) -> FlagRow:
        """Change the flag, audited; refused while the breaker is tripped unless told."""

    async def trip_breaker(self, why: str, detail: dict[str, Any], now: datetime) -> bool:
        """Turn checkout off for the breaker, audited; whether this call tripped it."""

    async def reset_breaker(self, reason: str, actor: str, now: datetime) -> FlagRow:
        """Clear a trip, audited (the flag stays off)."""

    async def window_counts(self, since: datetime, error_reasons: Sequence[str]) -> WindowCounts:
        """Code scans, errors among them, and security alerts since ``since``."""

    async def ping(self) -> None:
        """A trivial query; raises if the database does not answer."""

    async def kiosk_records(self) -> Sequence[KioskRecord]:
        """Every enrolled kiosk, retired ones included, by id."""

    async def configure_kiosk(
        self,
        kiosk_id: str,
        change: Change,
        now: datetime,
        actor: str,
        *,
        return_point: bool | None = None,
    ) -> KioskConfig | None:
        """Apply ``change`` to a kiosk's configuration under its lock, bump its version and
        audit it; None if there is no such kiosk, StorageError if it is retired or the
        shelf does not exist."""

    async def audit_head(self) -> ChainHead:
        """Where the audit chain starts and ends now."""

    async def audit_rows(
        self,
        after_seq: int,
        limit: int,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Sequence[ChainedRow]:
        """Audit rows with seq above ``after_seq`` (and ``since <= at < until``), by seq."""

    async def audit_chain_rows(self, after_pos: int, limit: int) -> Sequence[ChainedRow]:
        """Chained audit rows with chain place above ``after_pos``, in chain order."""

    async def seal_audit(self) -> int:
        """Chain audit rows written but not chained yet; how many (0 where rows are
        chained as they are written)."""

    async def overdue_loans(self, now: datetime) -> Sequence[OverdueLoan]:
        """Open checkouts whose due time has passed, most overdue first."""

    async def set_item_state(self, item_id: str, state: str, now: datetime, actor: str) -> None:
        """Put an item in ``available``, ``maintenance`` or ``retired`` (audited)."""

    # --- the fleet: enrolment, retirement, broker accounts (central/storage/fleet.py) ---

    async def broker_accounts(self) -> Sequence[Account]:
        """Every broker user, with each kiosk's shelf (the ACL's availability rule)."""

    async def set_central_account(
        self, username: str, password_hash: str, now: datetime, actor: str
    ) -> None:
        """Create or re-key a central instance's broker user."""

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

    async def retire_kiosk(self, kiosk_id: str, now: datetime, actor: str, reason: str) -> None:
        """Mark a kiosk retired and delete its broker user; its history stays."""

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

    async def claim_enrolment(
        self, claim_id: str, password_hash: str, now: datetime, actor: str
    ) -> Claim:
        """Use an enrolment code once: enrol its kiosk, or say why not (audited either way)."""

    async def refuse_claim(self, now: datetime, actor: str, reason: Reason) -> None:
        """Audit an enrolment code that was not ours or not one (forged, garbled)."""

    # --- signed releases and their rollouts to kiosks (central/storage/releases.py) ---

    async def add_release(
        self, release: ReleaseRow, artifact: bytes, actor: str, now: datetime
    ) -> ReleaseRow:
        """Store a release and its artifact; a version or artifact already there is refused."""

    async def get_release(self, version: str) -> ReleaseRow | None:
        """One release, without its artifact."""

    async def list_releases(self) -> Sequence[ReleaseRow]:
        """Every release, newest first."""

    async def release_artifact(self, version: str) -> bytes | None:
        """The artifact's bytes, as published."""

    async def start_rollout(
        self,
        version: str,
        *,
        percent: int,
        kiosks: Sequence[str],
        abort_percent: int,
        abort_min: int,
        reason: str,
        actor: str,
        now: datetime,
    ) -> RolloutRow:
        """Begin rolling ``version`` out; refused while another rollout is running or paused."""

    async def change_rollout(
        self,
        rollout_id: int,
        to: RolloutState,
        *,
        reason: str,
        actor: str,
        now: datetime,
        detail: dict[str, Any] | None = None,
    ) -> RolloutRow:
        """Pause, resume, abort, halt or finish a rollout, from the states that allow it."""

    async def get_rollout(self, rollout_id: int) -> RolloutRow | None:
        """One rollout."""

    async def list_rollouts(self, *, states: Sequence[RolloutState] = ()) -> Sequence[RolloutRow]:
        """Rollouts (in ``states``, if given), newest first."""

    async def rollout_kiosks(self, rollout_id: int) -> Sequence[KioskUpdateRow]:
        """Every kiosk central has offered this rollout to, and where each stands."""

    async def record_update(
        self,
        rollout_id: int,
        kiosk_id: str,
        state: str,
        reason: str | None,
        now: datetime,
        *,
        offered: bool = False,
    ) -> None:
        """Note where a kiosk stands (``offered``: central just sent it the offer again)."""


class ImportRefusedError(StorageError):
    """A bulk import had bad rows; nothing was imported."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(f"{len(problems)} bad row(s); nothing imported")
        self.problems = list(problems)


__all__ = [
    "AuditEntry",
    "CheckoutRow",
    "Edited",
    "ImportRefusedError",
    "ItemRow",
    "KioskRow",
    "MemberRow",
    "OverdueLoan",
    "PassUse",
    "Problem",
    "SessionRow",
    "ShelfRow",
    "Store",
    "Tx",
    "refusal",
]
