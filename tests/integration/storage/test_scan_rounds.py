"""The batched PostgreSQL path against the walk-up model, and how it cuts a batch into rounds."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from broker.messages import AnyEvent, CodeScan, Reason, SessionDone
from central import ledger, scan_rounds
from central.security import Limits
from central.storage.postgres import PostgresStore
from central.tokens import Label, Pass, TokenSigner
from testkit.postgres import fresh_database
from tests.integration.storage.test_ledger_model import EXAMPLES, STEPS, Bench, WalkUps
from tests.unit.central.support import (
    ADA,
    DRILL,
    GRACE,
    KIOSK_A,
    KIOSK_B,
    RAKE,
    SAW,
    make_signer,
    query,
    seed,
)


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


async def _library(store: PostgresStore, signer: TokenSigner, now: datetime) -> dict[str, str]:
    """The seeded library and one pass per name (the same ids in every database)."""
    await store.migrate()
    await seed(store, now)
    codes = {}
    for name, member_id in (("ada", ADA), ("ada2", ADA), ("grace", GRACE)):
        pass_id = f"PASS-{name.upper()}-0001"
        expires = now + timedelta(hours=1)
        await store.issue_pass(pass_id, member_id, now, expires, "admin:test")
        codes[name] = signer.member_pass(pass_id, member_id, expires)
    return codes


async def _state(store: PostgresStore) -> list[list[tuple[Any, ...]]]:
    """What the scans wrote, in a comparable form (ids and times aside)."""
    statements = [
        "SELECT item_id, member_id, kiosk_id, returned_at IS NULL, renewals FROM checkouts"
        " ORDER BY item_id, member_id, checked_out_at",
        "SELECT kiosk_id, member_id, pass_id, closed_at IS NULL FROM sessions ORDER BY pass_id",
        "SELECT item_id, member_id, state FROM holds ORDER BY item_id, member_id",
        "SELECT bucket_key, round(tokens::numeric, 6) FROM rate_buckets ORDER BY bucket_key",
        "SELECT kiosk_id, blocked_until IS NOT NULL FROM kiosks ORDER BY kiosk_id",
        "SELECT pass_id, consumed_by FROM qr_codes ORDER BY pass_id",
        "SELECT item_id, availability_seq, state FROM items ORDER BY item_id",
        "SELECT action, reason, kiosk_id, member_id, item_id, event_id, detail"
        " FROM qr_audit_log ORDER BY action, event_id, reason, detail",
        "SELECT kiosk_id, event_id, reason FROM scan_events ORDER BY kiosk_id, event_id",
    ]
    return [await query(store, statement) for statement in statements]


async def test_a_batch_decides_and_writes_as_its_scans_would_one_by_one() -> None:
    # Defences on and tight, so one batch meets rate limits, a cool-down and its lifting.
    limits = Limits(
        kiosk_per_min=1,
        kiosk_burst=5,
        member_per_min=1,
        member_burst=3,
        block_after=3,
        block_first=timedelta(seconds=30),
    )
    signer = make_signer()
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    async with fresh_database() as one, fresh_database() as other:
        batched_store = await PostgresStore(one, min_size=1, max_size=2).open()
        alone_store = await PostgresStore(other, min_size=1, max_size=2).open()
        try:
            codes = await _library(batched_store, signer, now)
            assert await _library(alone_store, signer, now) == codes
            drill, saw, rake = (signer.label(i, 1) for i in (DRILL, SAW, RAKE))
            forged = drill[:-1] + ("A" if drill[-1] != "A" else "B")
            plan = [
                (KIOSK_A, codes["ada"]),
                (KIOSK_B, forged),
                (KIOSK_A, drill),
                (KIOSK_B, codes["grace"]),
                (KIOSK_B, drill),  # Ada's by then: Grace joins its waitlist
                (KIOSK_A, saw),
                (KIOSK_A, rake),  # Ada's limit is two
                (KIOSK_B, forged),
                (KIOSK_B, forged),  # the third failure cools kiosk B down
                (KIOSK_B, saw),
                (KIOSK_A, drill),  # Ada renews the drill? Grace waits: refused
                (KIOSK_B, codes["ada2"]),  # a valid pass lifts the cool-down
                (KIOSK_A, codes["ada"]),  # used already
                (KIOSK_A, drill),
                (KIOSK_A, saw),  # past the kiosk's burst
            ]
            scans: list[scan_rounds.Scan] = []
            for n, (kiosk_id, code) in enumerate(plan):
                event = CodeScan(
                    event_id=f"EVENT-{n:04d}", kiosk_id=kiosk_id, code=code, scanned_at=now
                )
                scans.append((event, signer.verify(code, now)))
            batched = await scan_rounds.decide(batched_store, scans, now, limits)
            assert batched.rounds < len(scans)
            alone: dict[int, ledger.Outcome] = {}
            for index in batched.order:
                async with alone_store.write() as tx:
                    scanned, token = scans[index]
                    alone[index] = await ledger.apply(tx, scanned, token, now, limits)
            got = [(o.verdict.reason, o.verdict.item_id) for o in batched.outcomes]
            want = [(alone[i].verdict.reason, alone[i].verdict.item_id) for i in range(len(plan))]
            assert got == want
            assert {Reason.RATE_LIMITED, Reason.KIOSK_BLOCKED, Reason.HOLD_PLACED} <= {
                reason for reason, _ in got
            }
            changed = [[(a.item_id, a.state, a.seq) for a in o.changed] for o in batched.outcomes]
            assert changed == [
                [(a.item_id, a.state, a.seq) for a in alone[i].changed] for i in range(len(plan))
            ]
            assert await _state(batched_store) == await _state(alone_store)
        finally:
            await batched_store.close()
            await alone_store.close()


async def test_a_batch_that_waited_for_its_locks_is_stamped_when_it_holds_them() -> None:
    # Two centrals: one stamps its batch, then waits on the drill's lock while the other
    # (stamped a second later) checks the drill out to Ada, Grace queueing behind her. The
    # first batch, holding the lock at last, returns the drill (Ada's session over): its
    # return and Grace's hold must be dated after the loan they follow, or the records
    # say the drill came back before it went out and was held while on loan.
    signer = make_signer()
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    async with fresh_database() as dsn:
        store = await PostgresStore(dsn, min_size=1, max_size=2).open()
        try:
            codes = await _library(store, signer, start)
            drill = signer.label(DRILL, 1)

            def scans(plan: list[tuple[str, str | None]], first: int) -> list[scan_rounds.Scan]:
                out: list[scan_rounds.Scan] = []
                for n, (kiosk_id, code) in enumerate(plan, first):
                    event_id = f"EVENT-{n:04d}"
                    if code is None:
                        out.append(
                            (
                                SessionDone(event_id=event_id, kiosk_id=kiosk_id, scanned_at=start),
                                None,
                            )
                        )
                    else:
                        event = CodeScan(
                            event_id=event_id, kiosk_id=kiosk_id, code=code, scanned_at=start
                        )
                        out.append((event, signer.verify(code, start)))
                return out

            later = start + timedelta(seconds=1)
            lent = scans(
                [
                    (KIOSK_A, codes["ada"]),
                    (KIOSK_A, drill),
                    (KIOSK_B, codes["grace"]),
                    (KIOSK_B, drill),
                ],
                0,
            )
            first = await scan_rounds.decide(store, lent, later, None, lambda: later)
            assert [o.verdict.reason for o in first.outcomes][1::2] == [
                Reason.CHECKED_OUT,
                Reason.HOLD_PLACED,
            ]
            back = scans([(KIOSK_A, None), (KIOSK_A, drill)], 10)
            held = start + timedelta(seconds=2)  # the clock when the locks were granted
            second = await scan_rounds.decide(store, back, start, None, lambda: held)
            assert second.outcomes[1].verdict.reason is Reason.RETURNED_TO_HOLD
            rows = await query(
                store,
                "SELECT c.checked_out_at, c.returned_at, h.ready_at FROM checkouts c"
                " JOIN holds h ON h.item_id = c.item_id WHERE c.item_id = ?",
                DRILL,
            )
            [(out, returned, ready)] = rows
            assert out <= returned
            assert out <= ready
            assert returned == ready == held
        finally:
            await store.close()
