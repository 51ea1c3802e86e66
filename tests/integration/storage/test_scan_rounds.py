"""The batched PostgreSQL path against the walk-up model, and how it cuts a batch into rounds."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from broker.messages import AnyEvent, CodeScan, SessionDone
from central import ledger, scan_rounds
from central.storage.postgres import PostgresStore
from central.tokens import Label, Pass
from testkit.postgres import fresh_database
from tests.integration.storage.test_ledger_model import EXAMPLES, STEPS, Bench, WalkUps


class BatchedWalkUps(WalkUps):
    """The same walk-ups and the same checks, each scan decided by the batched path."""

    def _apply(self, event: CodeScan | SessionDone) -> ledger.Outcome:
        store = self.store
        assert isinstance(store, PostgresStore)
        now = self.clock.now()
        token = self.signer.verify(event.code, now) if isinstance(event, CodeScan) else None
        batched = self.loop.run_until_complete(
            scan_rounds.decide(store, [(event, token)], now, None)
        )
        outcome = batched.outcomes[0]
        # One transaction: BEGIN, the locking read, the writes, COMMIT.
        assert batched.statements <= 4
        if not outcome.replayed:
            self.history.append((event, outcome.verdict))
        return outcome


def test_random_walk_ups_decided_in_batches_follow_the_model(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    databases = contextlib.AsyncExitStack()
    try:
        dsn = loop.run_until_complete(databases.enter_async_context(fresh_database()))

        class ThisRun(BatchedWalkUps):
            bench = Bench(loop, tmp_path, dsn)

        run_state_machine_as_test(
            ThisRun,
            settings=settings(
                max_examples=EXAMPLES["postgres"], stateful_step_count=STEPS, deadline=None
            ),
        )
    finally:
        try:
            loop.run_until_complete(databases.aclose())
        finally:
            loop.close()


def _scan(kiosk_id: str, n: int) -> AnyEvent:
    when = datetime.now(UTC)
    return SessionDone(event_id=f"EVENT-{n:04d}", kiosk_id=kiosk_id, scanned_at=when)


def test_a_round_keeps_each_kiosks_order_and_never_shares_an_item_or_a_member() -> None:
    expires = datetime.now(UTC)
    scans: list[scan_rounds.Scan] = [
        (_scan("KIOSK-1", 0), Label(item_id="I1", version=1)),
        (_scan("KIOSK-2", 1), Label(item_id="I1", version=1)),  # I1 is taken: next round
        (_scan("KIOSK-3", 2), Label(item_id="I2", version=1)),  # in M1's session
        (_scan("KIOSK-4", 3), Pass(pass_id="P1", member_id="M1", expires_at=expires)),  # M1: next
        (_scan("KIOSK-1", 4), Label(item_id="I5", version=1)),  # after K1's first, always
    ]
    waiting: dict[str, deque[int]] = {}
    for index, (event, _token) in enumerate(scans):
        waiting.setdefault(event.kiosk_id, deque()).append(index)
    members: dict[str, str | None] = {
        "KIOSK-1": "M9",
        "KIOSK-2": "M2",
        "KIOSK-3": "M1",
        "KIOSK-4": None,
    }
    rounds = []
    while chosen := scan_rounds._round(scans, waiting, members):
        rounds.append(chosen)
    assert rounds == [[0, 2], [4, 1, 3]]
