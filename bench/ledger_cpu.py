"""CPU per scan decided by the ledger on SQLite's writer thread, in process (no broker).

    python -m bench.ledger_cpu [--rounds 30] [--limits]

Each round: a pass opens a session, 200 items are checked out, "done", the 200 come back;
batches of 100 events share one transaction, as the consumer runs them when no event fails
(central/consumer.py). Prints CPU microseconds per event (steadier than wall time on a
shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.messages import CodeScan, SessionDone
from central import ledger, security
from central.storage.base import Tx
from central.storage.rollout import FlagMode, FlagSetting
from central.storage.sqlite import SqliteStore
from central.tokens import Label, Pass, Token

ITEMS = 200
BATCH = 100
ACTOR = "admin:bench"
_Event = tuple[CodeScan | SessionDone, Token | None]


def _scan(now: datetime) -> CodeScan:
    return CodeScan(event_id=uuid.uuid4().hex, kiosk_id="K-1", code="CS:BENCH", scanned_at=now)


async def run(rounds: int, limits: security.Limits) -> tuple[float, Counter[str]]:
    """CPU seconds per event, and the verdicts given."""
    store = await SqliteStore(Path(tempfile.mkdtemp()) / "central.db").open()
    try:
        await store.migrate()
        now = datetime.now(UTC)
        await store.add_shelf("S-1", "Shelf", now, ACTOR)
        await store.add_kiosk("K-1", "S-1", now, ACTOR, session_timeout_s=3600)
        await store.add_member("M-1", "Anna", now, ACTOR, checkout_limit=10**6)
        for i in range(ITEMS):
            await store.add_item(f"I-{i}", "S-1", f"Item {i}", now, ACTOR)
        await store.set_flag(FlagSetting(FlagMode.ON), "bench", ACTOR, now)
        events: list[_Event] = []
        for r in range(rounds):
            await store.issue_pass(f"P-{r}", "M-1", now, now + timedelta(hours=2), ACTOR)
            events.append((_scan(now), Pass(f"P-{r}", "M-1", now + timedelta(hours=2))))
            events += [(_scan(now), Label(f"I-{i}", 1)) for i in range(ITEMS)]
            events.append(
                (SessionDone(event_id=uuid.uuid4().hex, kiosk_id="K-1", scanned_at=now), None)
            )
            events += [(_scan(now), Label(f"I-{i}", 1)) for i in range(ITEMS)]
        verdicts: Counter[str] = Counter()
        started = time.process_time()
        for start in range(0, len(events), BATCH):
            chunk = events[start : start + BATCH]

            async def work(
                tx: Tx, chunk: list[tuple[CodeScan | SessionDone, Token | None]] = chunk
            ) -> list[ledger.Outcome]:
                out = []
                for event, token in chunk:
                    out.append(await ledger.apply(tx, event, token, now, limits))
                return out

            verdicts.update(o.verdict.reason.value for o in await store.run_write(work))
        return (time.process_time() - started) / len(events), verdicts
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--limits", action="store_true", help="rate limits on (never reached)")
    args = parser.parse_args()
    limits = (
        security.Limits(
            kiosk_per_min=1e9, kiosk_burst=10**9, member_per_min=1e9, member_burst=10**9
        )
        if args.limits
        else security.Limits(kiosk_per_min=0, member_per_min=0, block_after=0)
    )
    cpu, verdicts = asyncio.run(run(args.rounds, limits))
    print(f"{cpu * 1e6:.0f} us CPU per event; verdicts {dict(verdicts)}")


if __name__ == "__main__":
    main()
