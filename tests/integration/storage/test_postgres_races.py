"""Two PostgreSQL transactions racing for one pass or one item: the locks pick one winner.

PostgreSQL only: SQLite runs one write transaction at a time (BEGIN IMMEDIATE behind the
store's own lock), so on it these races cannot happen at all.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

import pytest

from broker.messages import CodeScan, Reason
from central import ledger
from central.clock import FakeClock
from central.storage.base import PassUse
from central.tokens import TokenSigner
from tests.unit.central.support import (
    ADA,
    GRACE,
    ITEMS,
    KIOSK_A,
    KIOSK_B,
    AnyStore,
    code_scan,
    decide,
    execute,
    issue_pass,
    query,
)

pytestmark = pytest.mark.parametrize("backend", ["postgres"])

ROUNDS = 6


async def together(
    store: AnyStore, signer: TokenSigner, events: list[CodeScan], now: datetime
) -> list[ledger.Outcome]:
    """Decide ``events`` at once, each in its own transaction, as two central instances do.

    Every transaction has begun before any of them applies its event, so they overlap.
    """
    started = asyncio.Barrier(len(events))

    async def one(event: CodeScan) -> ledger.Outcome:
        token = signer.verify(event.code, now)
        async with store.write() as tx:
            await started.wait()
            return await ledger.apply(tx, event, token, now)

    return list(await asyncio.gather(*(one(event) for event in events)))


async def consume(
    store: AnyStore, pass_id: str, kiosk_id: str, now: datetime, started: asyncio.Barrier
) -> PassUse:
    """Consume the pass in a write of its own, once every racer's transaction has begun."""
    async with store.write() as tx:
        await started.wait()
        return await tx.consume_pass(pass_id, ADA, kiosk_id, now)


async def test_two_transactions_consuming_one_pass_consume_it_once(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    for _ in range(ROUNDS):
        pass_id, _ = await issue_pass(library, signer, ADA, now)
        started = asyncio.Barrier(2)
        uses = await asyncio.gather(
            consume(library, pass_id, KIOSK_A, now, started),
            consume(library, pass_id, KIOSK_B, now, started),
        )
        assert sorted(uses) == sorted([PassUse.CONSUMED, PassUse.ALREADY_USED])
        consumed_by = await query(
            library, "SELECT consumed_by FROM qr_codes WHERE pass_id = ?", pass_id
        )
        winner = KIOSK_A if uses[0] is PassUse.CONSUMED else KIOSK_B
        assert consumed_by == [(winner,)]


async def test_two_sessions_checking_out_one_item_at_once_check_it_out_once(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    await execute(library, "UPDATE members SET checkout_limit = 100")
    now = clock.now()
    for member_id, kiosk_id in ((ADA, KIOSK_A), (GRACE, KIOSK_B)):
        _, code = await issue_pass(library, signer, member_id, now)
        opened = await decide(library, signer, code_scan(kiosk_id, code, now), now)
        assert opened.verdict.reason is Reason.SESSION_OPENED
    winners: Counter[str] = Counter()
    for round_ in range(ROUNDS):
        item_id = ITEMS[round_ % len(ITEMS)]
        label = signer.label(item_id, 1)
        # No exception may escape: the item lock makes the loser wait and then see the
        # winner's checkout, so no constraint has to refuse anything.
        scans = [code_scan(KIOSK_A, label, now), code_scan(KIOSK_B, label, now)]
        ready = await query(
            library, "SELECT member_id FROM holds WHERE item_id = ? AND state = 'ready'", item_id
        )
        outcomes = await together(library, signer, scans, now)
        reasons = sorted(outcome.verdict.reason.value for outcome in outcomes)
        # The loser joins the waitlist; when the item was on the hold shelf, the member it
        # was held for wins and the other is told it is reserved (or, coming second, joins
        # the waitlist of the holder's new loan) (docs/circulation.md).
        losers = {Reason.HOLD_PLACED.value} | ({Reason.RESERVED.value} if ready else set())
        assert reasons[0] == Reason.CHECKED_OUT.value
        assert reasons[1] in losers
        [holder] = await query(
            library,
            "SELECT member_id FROM checkouts WHERE item_id = ? AND returned_at IS NULL",
            item_id,
        )
        if ready:
            assert holder == ready[0]
        winners[holder[0]] += 1
        # Give it back (a queued scan is a return whatever session is open) for the next round.
        returned = await decide(library, signer, code_scan(KIOSK_A, label, now, queued=True), now)
        assert returned.verdict.reason in {Reason.RETURNED, Reason.RETURNED_TO_HOLD}
    assert sum(winners.values()) == ROUNDS
