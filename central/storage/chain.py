"""The audit log's hash chain: each row's hash covers its fields and the row before it.

Both backends store the same text per field, so one canonical encoding serves both; the
walk in :class:`ChainWalk` finds the first row that was edited, deleted or reordered.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from central.storage.rows import AuditEntry

# The prev_hash of the first chained row: nothing came before it.
GENESIS_HASH = "0" * 64


@functools.lru_cache(maxsize=64)  # a batch's audit rows share one "now" (equal: one text)
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
    chain_pos: int | None  # None until chained (or for rows from before the chain)
    prev_hash: str | None
    row_hash: str | None

    def expected_hash(self) -> str:
        """The hash this row should carry, given its fields, place and prev_hash."""
        return row_hash(
            self.chain_pos or 0,
            self.seq,
            self.at,
            [
                self.actor,
                self.action,
                self.reason,
                self.kiosk_id,
                self.member_id,
                self.item_id,
                self.event_id,
                self.detail,
            ],
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
            "chain_pos": self.chain_pos,
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
            chain_pos=data["chain_pos"],
            prev_hash=data["prev_hash"],
            row_hash=data["row_hash"],
        )


# One encoder each for every row (json.dumps with options builds a new one per call).
_ROW_TEXT = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))
_DETAIL_TEXT = json.JSONEncoder(sort_keys=True)


def detail_text(detail: dict[str, Any]) -> str:
    """An audit row's detail as stored and hashed, the same text on every backend."""
    return _DETAIL_TEXT.encode(detail)


def row_hash(pos: int, seq: int, at: datetime, fields: list[str | None], prev_hash: str) -> str:
    """SHA-256 (hex) over a JSON array of place, seq, time, the row's fields and prev hash.

    ``fields`` are actor, action, reason, kiosk, member, item, event and detail text, in
    that order. A JSON array keeps field boundaries and NULL apart from "" (a plain join
    would not); it is spelled as PostgreSQL's ``json_build_array(...)::text`` prints it, so
    a check in SQL could recompute it.
    """
    text = _ROW_TEXT.encode([pos, seq, stamp(at), *fields, prev_hash])
    return hashlib.sha256(text.encode()).hexdigest()


def entry_hash(pos: int, seq: int, entry: AuditEntry, detail: str, prev_hash: str) -> str:
    """The hash of ``entry`` written as row ``seq`` at chain place ``pos``."""
    fields = [
        entry.actor,
        entry.action,
        entry.reason,
        entry.kiosk_id,
        entry.member_id,
        entry.item_id,
        entry.event_id,
        detail,
    ]
    return row_hash(pos, seq, entry.at, fields, prev_hash)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where the chain starts and where it ends now."""

    genesis_seq: int  # rows up to this seq were written before the chain began
    pos: int  # the place of the newest chained row
    row_hash: str
    pending: int = 0  # rows written and not chained yet


@dataclass(slots=True)
class ChainWalk:
    """A walk along the chain in place order, one page at a time; the first break stops it."""

    head: ChainHead
    last_pos: int = 0
    last_seq: int | None = None
    last_hash: str = GENESIS_HASH
    checked: int = 0
    broken_seq: int | None = None
    problem: str | None = None

    def check_page(self, rows: list[ChainedRow]) -> bool:
        """Check chained rows (in place order, after the last page); False once broken."""
        for row in rows:
            if self.broken_seq is not None:
                return False
            if row.chain_pos != self.last_pos + 1:
                # The missing row's seq went with it: the one after the last good row is
                # where it was (exactly so when rows were chained in a run).
                first, last = self.last_pos + 1, (row.chain_pos or 0) - 1
                return self._broken(
                    (self.last_seq or self.head.genesis_seq) + 1,
                    f"is missing: chain places {first}..{last}, before seq {row.seq}",
                )
            if row.prev_hash != self.last_hash:
                return self._broken(row.seq, "does not follow the row before it")
            if row.row_hash != row.expected_hash():
                return self._broken(row.seq, "was changed after it was written")
            self.last_pos, self.last_seq, self.last_hash = row.chain_pos, row.seq, row.row_hash
            self.checked += 1
        return self.broken_seq is None

    def finish(self) -> bool:
        """After the last page: the chain must end where the head says."""
        if self.broken_seq is not None:
            return False
        if self.last_pos != self.head.pos:
            first, last = self.last_pos + 1, self.head.pos
            return self._broken(
                (self.last_seq or self.head.genesis_seq) + 1,
                f"is missing: chain places {first}..{last}, the newest",
            )
        if self.last_hash != self.head.row_hash:
            return self._broken(self.last_seq or 0, "does not match the chain head")
        return True

    def _broken(self, seq: int, problem: str) -> bool:
        self.broken_seq, self.problem = seq, problem
        return False
