"""The audit log's hash chain: each row's hash covers its fields and the row before it.

Both backends store the same text per field, so one canonical encoding serves both; the
walk in :func:`check_page` finds the first row that was edited, deleted or slipped in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from central.storage.base import AuditEntry

# The prev_hash of the first chained row: nothing came before it.
GENESIS_HASH = "0" * 64


def stamp(moment: datetime) -> str:
    """A time as the chain hashes it: fixed-width UTC with microseconds."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@dataclass(frozen=True, slots=True)
class ChainedRow:
    """One audit row as stored, with its place in the chain."""

    seq: int
    at: datetime
    actor: str
    action: str
    reason: str | None
    kiosk_id: str | None
    member_id: str | None
    item_id: str | None
    event_id: str | None
    detail: str  # the JSON text exactly as stored
    prev_hash: str | None  # None for rows written before the chain began
    row_hash: str | None

    def expected_hash(self) -> str:
        """The hash this row should carry, given its fields and its prev_hash."""
        return row_hash(
            self.seq,
            self.at,
            self.actor,
            self.action,
            self.reason,
            self.kiosk_id,
            self.member_id,
            self.item_id,
            self.event_id,
            self.detail,
            self.prev_hash or "",
        )

    def to_json(self) -> dict[str, Any]:
        """The row as one JSON object (the export's line)."""
        return {
            "seq": self.seq,
            "at": stamp(self.at),
            "actor": self.actor,
            "action": self.action,
            "reason": self.reason,
            "kiosk_id": self.kiosk_id,
            "member_id": self.member_id,
            "item_id": self.item_id,
            "event_id": self.event_id,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "row_hash": self.row_hash,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChainedRow:
        """The inverse of :meth:`to_json` (an exported line read back)."""
        return cls(
            seq=int(data["seq"]),
            at=datetime.fromisoformat(data["at"]),
            actor=data["actor"],
            action=data["action"],
            reason=data["reason"],
            kiosk_id=data["kiosk_id"],
            member_id=data["member_id"],
            item_id=data["item_id"],
            event_id=data["event_id"],
            detail=data["detail"],
            prev_hash=data["prev_hash"],
            row_hash=data["row_hash"],
        )


def row_hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    reason: str | None,
    kiosk_id: str | None,
    member_id: str | None,
    item_id: str | None,
    event_id: str | None,
    detail: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) over a JSON array of the row's fields, its seq and the previous hash.

    A JSON array keeps field boundaries and NULL apart from "" (a plain join would not).
    It is spelled exactly as PostgreSQL's ``json_build_array(...)::text`` prints it, so
    the PostgreSQL store computes the same hash inside its one INSERT statement.
    """
    fields = [
        seq,
        stamp(at),
        actor,
        action,
        reason,
        kiosk_id,
        member_id,
        item_id,
        event_id,
        detail,
        prev_hash,
    ]
    text = json.dumps(fields, ensure_ascii=False, separators=(", ", ": "))
    return hashlib.sha256(text.encode()).hexdigest()


def entry_hash(seq: int, entry: AuditEntry, detail: str, prev_hash: str) -> str:
    """The hash of ``entry`` written as row ``seq`` with ``detail`` as its stored text."""
    return row_hash(
        seq,
        entry.at,
        entry.actor,
        entry.action,
        entry.reason,
        entry.kiosk_id,
        entry.member_id,
        entry.item_id,
        entry.event_id,
        detail,
        prev_hash,
    )


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where the chain starts and where it ends now."""

    genesis_seq: int  # rows up to this seq were written before the chain began
    seq: int  # the newest chained row
    row_hash: str


@dataclass(slots=True)
class ChainWalk:
    """A walk along the chain, one page at a time; the first break stops it."""

    head: ChainHead
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    checked: int = 0
    unchained: int = 0
    broken_seq: int | None = None
    problem: str | None = None

    def __post_init__(self) -> None:
        self.last_seq = self.head.genesis_seq

    def check_page(self, rows: list[ChainedRow]) -> bool:
        """Check rows (in seq order, following the last page); False once broken."""
        for row in rows:
            if row.seq <= self.head.genesis_seq:
                self.unchained += 1
                continue
            if self.broken_seq is not None:
                return False
            if row.seq != self.last_seq + 1:
                missing = f"rows {self.last_seq + 1}..{row.seq - 1} are missing"
                return self._broken(self.last_seq + 1, missing)
            if row.prev_hash != self.last_hash:
                return self._broken(row.seq, "does not follow the row before it")
            if row.row_hash != row.expected_hash():
                return self._broken(row.seq, "was changed after it was written")
            self.last_seq, self.last_hash = row.seq, row.row_hash
            self.checked += 1
        return self.broken_seq is None

    def finish(self) -> bool:
        """After the last page: the chain must end where the head says."""
        if self.broken_seq is not None:
            return False
        if self.last_seq < self.head.seq:
            return self._broken(
                self.last_seq + 1, f"rows {self.last_seq + 1}..{self.head.seq} are missing"
            )
        if self.last_seq > self.head.seq:
            return self._broken(self.head.seq + 1, "was added outside the chain")
        if self.last_hash != self.head.row_hash:
            return self._broken(self.last_seq, "does not match the chain head")
        return True

    def _broken(self, seq: int, problem: str) -> bool:
        self.broken_seq, self.problem = seq, problem
        return False
