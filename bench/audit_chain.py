"""What the audit chain's head lock costs on PostgreSQL: chained vs plain audit appends.

    python -m bench.audit_chain --transactions 2000 --writers 16 --rounds 3

Each transaction locks one of many item rows (as the ledger does) and appends one audit
row, either through the store (chain head locked last, held to commit) or with the plain
INSERT central used before the chain (into a copy of the log's shape). Rounds alternate so a busy machine hurts both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from central.storage.base import AuditEntry
from central.storage.postgres import PostgresStore
from tests.support.postgres import fresh_database

ITEMS = 200


async def _round(store: PostgresStore, transactions: int, writers: int, *, chained: bool) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(transactions):
        queue.put_nowait(n)
    now = datetime.now(UTC)

    async def writer() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            async with store.write() as tx:
                await tx.item(f"I-{n % ITEMS}")
                entry = AuditEntry(now, f"kiosk:K-{n % 64}", "bench.write", reason="CHECKED_OUT")
                if chained:
                    await tx.audit(entry)
                else:
                    await tx.conn.execute(
                        "INSERT INTO bench_plain_log (at, actor, action, reason, detail)"
                        " VALUES ($1, $2, $3, $4, $5)",
                        entry.at,
                        entry.actor,
                        entry.action,
                        entry.reason,
                        json.dumps(entry.detail),
                    )

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return transactions / (time.perf_counter() - started)


async def _bench(transactions: int, writers: int, rounds: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"plain": [], "chained": []}
    async with fresh_database() as dsn:
        store = await PostgresStore(dsn, max_size=writers).open()
        try:
            await store.migrate()
            # The plain appends get a table of their own (the log's seq is the chain's now).
            await store.pool.execute(
                "CREATE TABLE bench_plain_log (seq BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ,"
                " actor TEXT, action TEXT, reason TEXT, detail TEXT)"
            )
            now = datetime.now(UTC)
            await store.add_shelf("S", "Shelf", now, "admin:bench")
            for i in range(ITEMS):
                await store.add_item(f"I-{i}", "S", "Item", now, "admin:bench")
            for _ in range(rounds):
                for mode in ("plain", "chained"):
                    rate = await _round(store, transactions, writers, chained=mode == "chained")
                    rates[mode].append(rate)
        finally:
            await store.close()
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print transactions per second for each mode."""
    parser = argparse.ArgumentParser(prog="bench.audit_chain", description=__doc__)
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rates = asyncio.run(_bench(args.transactions, args.writers, args.rounds))
    for mode, values in rates.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{mode:8s} median {statistics.median(values):,.0f} tx/s  ({shown})")  # noqa: T201
    cost = 1 - statistics.median(rates["chained"]) / statistics.median(rates["plain"])
    print(f"chain cost: {cost:.0%} of audited write transactions per second")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
