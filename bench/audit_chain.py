"""What the audit chain costs on PostgreSQL: audited writes with the sealer running vs not.

    python -m bench.audit_chain --transactions 2000 --writers 16 --rounds 3

Each transaction locks one of many item rows (as the ledger does) and appends one audit
row through the store. "chained" runs central's sealer loop alongside (as every central
does) and then times sealing what is left; "plain" appends to a copy of the log's shape
that nothing seals, as before the chain. Rounds alternate so a busy machine hurts both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from central.audit import seal_forever
from central.storage.base import AuditEntry
from central.storage.postgres import PostgresStore
from testkit.postgres import fresh_database

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
    sealer = asyncio.create_task(seal_forever(store)) if chained else None
    await asyncio.gather(*(writer() for _ in range(writers)))
    rate = transactions / (time.perf_counter() - started)
    if sealer is not None:
        sealer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sealer
        tail = time.perf_counter()
        left = await store.seal_audit()
        print(f"  sealed the last {left} rows in {time.perf_counter() - tail:.3f} s")
    return rate


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
        print(f"{mode:8s} median {statistics.median(values):,.0f} tx/s  ({shown})")
    cost = 1 - statistics.median(rates["chained"]) / statistics.median(rates["plain"])
    print(f"chain cost: {cost:.0%} of audited write transactions per second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
