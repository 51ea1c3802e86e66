"""What a reminder round costs on SQLite with many open loans, and how long it holds the loop.

    python -m bench.reminders_round [--members 500] [--loans 5000] [--full]

Seeds a library whose loans fall due over the next eight days, then times rounds of
``Reminders.run_once`` with a mailer that sends nothing: the first (claims and "sends"),
then quiet ones. A task sleeping 1 ms measures the longest event-loop stall in each,
which is what a round costs the consumer's verdicts sharing that loop. ``--full`` makes
every round look at the loans (as ``run-now`` does) instead of only when they changed.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Mapping
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from central.clock import FakeClock
from central.services.reminders import LinkMaker, Reminders
from central.storage.dialect import to_db
from central.storage.reminders import ReminderRows
from central.storage.sqlite import SqliteStore

NOW = datetime(2026, 1, 5, 9, tzinfo=UTC)


class NullMailer:
    """Accepts every mail and sends nothing."""

    async def send(
        self, to: str, subject: str, body: str, headers: Mapping[str, str] | None = None
    ) -> None:
        """Drop the mail."""


def seed(path: Path, members: int, loans: int) -> None:
    """Members with addresses and ``loans`` open checkouts due 12 h to 8 days from now."""
    at = to_db(NOW)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO shelves (shelf_id, name, created_at) VALUES ('S', 'S', ?)", (at,))
        db.execute(
            "INSERT INTO kiosks (kiosk_id, shelf_id, created_at) VALUES ('K', 'S', ?)", (at,)
        )
        for m in range(members):
            member = f"M-{m}"
            db.execute(
                "INSERT INTO members (member_id, name, created_at) VALUES (?, 'Member', ?)",
                (member, at),
            )
            db.execute(
                "INSERT INTO member_emails (member_id, email) VALUES (?, ?)",
                (member, f"m{m}@example.org"),
            )
            db.execute(
                "INSERT INTO qr_codes (pass_id, member_id, issued_at, expires_at, consumed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (f"P-{m}", member, at, at, at),
            )
            db.execute(
                "INSERT INTO sessions (kiosk_id, member_id, pass_id, opened_at, expires_at,"
                " closed_at) VALUES ('K', ?, ?, ?, ?, ?)",
                (member, f"P-{m}", at, at, at),
            )
        for n in range(loans):
            db.execute(
                "INSERT INTO items (item_id, shelf_id, name, created_at)"
                " VALUES (?, 'S', 'Item', ?)",
                (f"I-{n}", at),
            )
            db.execute(
                "INSERT INTO checkouts (item_id, member_id, session_id, kiosk_id, event_id,"
                " checked_out_at, due_at) VALUES (?, ?, ?, 'K', ?, ?, ?)",
                (
                    f"I-{n}",
                    f"M-{n % members}",
                    n % members + 1,
                    f"E-{n}",
                    at,
                    to_db(NOW + timedelta(hours=12 + n % 200)),
                ),
            )


async def measure(members: int, loans: int, rounds: int, *, full: bool) -> None:
    """Seed, then print each round's outcome, wall time and longest loop stall."""
    path = Path(tempfile.mkdtemp()) / "central.db"
    store = await SqliteStore(path).open()
    await store.migrate()
    await store.close()
    seed(path, members, loans)
    store = await SqliteStore(path).open()
    reminders = Reminders(
        ReminderRows(store, store.dialect), FakeClock(NOW), NullMailer(), LinkMaker("https://x")
    )
    stall = [0.0]

    async def watch() -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            stall[0] = max(stall[0], time.perf_counter() - start - 0.001)

    watcher = asyncio.create_task(watch())
    try:
        for n in range(rounds):
            await asyncio.sleep(0.05)
            stall[0] = 0.0
            start = time.perf_counter()
            done = await reminders.run_once(full=full)
            wall = (time.perf_counter() - start) * 1000
            label = "first" if n == 0 else "then "
            print(
                f"{label} claimed {done.claimed:4d} sent {done.sent:4d}: {wall:6.0f} ms,"
                f" longest event-loop stall {stall[0] * 1000:5.1f} ms"
            )
    finally:
        watcher.cancel()
        await store.close()


def main() -> None:
    """``python -m bench.reminders_round``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--loans", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--full", action="store_true", help="look at the loans every round")
    args = parser.parse_args()
    asyncio.run(measure(args.members, args.loans, args.rounds, full=args.full))


if __name__ == "__main__":
    main()
