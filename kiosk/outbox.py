"""The durable outbox (aiosqlite): a scan is stored before it is sent and kept until answered.

It also owns what is in flight: when each event last went out, which of them a member is
standing at the kiosk waiting for, and which this run of the kiosk created. A verdict is
matched against stored columns (``scanned_at``, ``queued``), never by re-reading payloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiosqlite

from broker.messages import AnyEvent, CodeScan, encode

_CREATE = (
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_id TEXT NOT NULL UNIQUE, payload BLOB NOT NULL,"
    " scanned_at TEXT, queued INTEGER NOT NULL DEFAULT 0)"
)
# Outboxes written before the columns existed: add them and fill them from the stored
# payloads once, in SQL, so an upgraded kiosk keeps every waiting scan. A payload that is
# not JSON leaves scanned_at empty (its verdict is then not shown, as before).
_UPGRADE = (
    "ALTER TABLE outbox ADD COLUMN scanned_at TEXT",
    "ALTER TABLE outbox ADD COLUMN queued INTEGER NOT NULL DEFAULT 0",
    "UPDATE outbox SET"
    " scanned_at = CASE WHEN json_valid(CAST(payload AS TEXT))"
    " THEN json_extract(CAST(payload AS TEXT), '$.scanned_at') END,"
    " queued = CASE WHEN json_valid(CAST(payload AS TEXT))"
    " THEN coalesce(json_extract(CAST(payload AS TEXT), '$.queued'), 0) ELSE 0 END",
)


@dataclass(frozen=True, slots=True)
class Answered:
    """An event central has just answered, as the outbox held it."""

    scanned_at: datetime | None
    queued: bool  # the member was already told "queued"
    waiting: bool  # sent live, and the member has not yet been told "no answer"
    mine: bool  # created by this run of the kiosk

    def member_waiting(self, now: datetime, window_s: float) -> bool:
        """Whether someone is likely standing at the kiosk for this answer."""
        if self.waiting:
            return True
        if self.mine or self.queued or self.scanned_at is None:
            return False
        # Scanned moments before this kiosk restarted (power blip, crash): the member is
        # likely still here, so show them the answer.
        age = (now - self.scanned_at).total_seconds()
        return 0 <= age < window_s


class Outbox:
    """Events waiting for their verdict, in the order they happened; survives power cuts."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self.depth = 0
        self._sent_at: dict[str, float] = {}  # monotonic time each event last went out
        self._waiting: set[str] = set()
        self._mine: set[str] = set()

    @classmethod
    async def open(cls, path: Path) -> Outbox:
        """Open (or create, or upgrade) the outbox file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        await db.execute("PRAGMA journal_mode = WAL")
        # FULL: an accepted return must survive the power being pulled a moment later.
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute(_CREATE)
        async with db.execute("SELECT name FROM pragma_table_info('outbox')") as cur:
            columns = {row[0] for row in await cur.fetchall()}
        if "scanned_at" not in columns:
            await db.execute("BEGIN IMMEDIATE")
            for statement in _UPGRADE:
                await db.execute(statement)
            await db.execute("COMMIT")
        box = cls(db)
        async with db.execute("SELECT count(*) FROM outbox") as cur:
            row = await cur.fetchone()
        box.depth = int(row[0]) if row else 0
        return box

    async def put(self, event: AnyEvent) -> bytes:
        """Store ``event`` durably; the bytes to publish."""
        payload = encode(event)
        queued = isinstance(event, CodeScan) and event.queued
        cur = await self._db.execute(
            "INSERT OR IGNORE INTO outbox (event_id, payload, scanned_at, queued)"
            " VALUES (?, ?, ?, ?)",
            (event.event_id, payload, event.scanned_at.isoformat(), int(queued)),
        )
        self.depth += cur.rowcount
        self._mine.add(event.event_id)
        return payload

    def sent(self, event_id: str, at: float, *, member_waiting: bool = False) -> None:
        """``event_id`` just went out at monotonic ``at``; maybe with a member waiting."""
        self._sent_at[event_id] = at
        if member_waiting:
            self._waiting.add(event_id)

    def overdue(self, now: float, timeout_s: float) -> list[str]:
        """Events a member has waited for longer than ``timeout_s``; they stop waiting.

        The events stay in the outbox and are re-sent until answered.
        """
        late = [e for e in self._waiting if now - self._sent_at.get(e, now) > timeout_s]
        self._waiting.difference_update(late)
        return late

    async def due(self, now: float, min_age: float = 0.0) -> list[tuple[str, bytes]]:
        """Unanswered events not sent in the last ``min_age`` s, oldest first; marked sent."""
        due = [
            (event_id, payload)
            for event_id, payload in await self.pending()
            if now - self._sent_at.get(event_id, float("-inf")) >= min_age
        ]
        for event_id, _ in due:
            self._sent_at[event_id] = now
        return due

    async def answer(self, event_id: str) -> Answered | None:
        """Forget an answered event; how it was held, or None if it was not (a redelivery)."""
        waiting, mine = event_id in self._waiting, event_id in self._mine
        self._waiting.discard(event_id)
        self._mine.discard(event_id)
        self._sent_at.pop(event_id, None)
        async with self._db.execute(
            "DELETE FROM outbox WHERE event_id = ? RETURNING scanned_at, queued", (event_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        self.depth -= 1
        return Answered(_when(row[0]), bool(row[1]), waiting, mine)

    async def remove(self, event_id: str) -> bool:
        """Forget an answered event; whether it was waiting."""
        return await self.answer(event_id) is not None

    async def pending(self) -> list[tuple[str, bytes]]:
        """Every unanswered event as (event id, payload), oldest first."""
        async with self._db.execute("SELECT event_id, payload FROM outbox ORDER BY seq") as cur:
            return [(row[0], bytes(row[1])) for row in await cur.fetchall()]

    async def close(self) -> None:
        """Close the file."""
        await self._db.close()


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
