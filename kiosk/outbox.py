"""The durable outbox (aiosqlite): a scan is stored before it is sent and kept until answered."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from broker.messages import CodeScan, SessionDone, encode


class Outbox:
    """Events waiting for their verdict, in the order they happened; survives power cuts."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self.depth = 0

    @classmethod
    async def open(cls, path: Path) -> Outbox:
        """Open (or create) the outbox file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        await db.execute("PRAGMA journal_mode = WAL")
        # FULL: an accepted return must survive the power being pulled a moment later.
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " event_id TEXT NOT NULL UNIQUE, payload BLOB NOT NULL)"
        )
        box = cls(db)
        async with db.execute("SELECT count(*) FROM outbox") as cur:
            row = await cur.fetchone()
        box.depth = int(row[0]) if row else 0
        return box

    async def put(self, event: CodeScan | SessionDone) -> bytes:
        """Store ``event`` durably; the bytes to publish."""
        payload = encode(event)
        cur = await self._db.execute(
            "INSERT OR IGNORE INTO outbox (event_id, payload) VALUES (?, ?)",
            (event.event_id, payload),
        )
        self.depth += cur.rowcount
        return payload

    async def remove(self, event_id: str) -> bool:
        """Forget an answered event; whether it was waiting."""
        cur = await self._db.execute("DELETE FROM outbox WHERE event_id = ?", (event_id,))
        self.depth -= cur.rowcount
        return cur.rowcount == 1

    async def take(self, event_id: str) -> bytes | None:
        """Forget an answered event; its payload if it was waiting."""
        async with self._db.execute(
            "DELETE FROM outbox WHERE event_id = ? RETURNING payload", (event_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        self.depth -= 1
        return bytes(row[0])

    async def pending(self) -> list[tuple[str, bytes]]:
        """Every unanswered event as (event id, payload), oldest first."""
        async with self._db.execute("SELECT event_id, payload FROM outbox ORDER BY seq") as cur:
            return [(row[0], bytes(row[1])) for row in await cur.fetchall()]

    async def close(self) -> None:
        """Close the file."""
        await self._db.close()
