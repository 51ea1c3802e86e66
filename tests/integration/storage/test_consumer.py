"""The consumer on both stores: a batch in, verdicts and availability out, then the acks.

SQLite decides a batch in one transaction with a savepoint per event (group commit);
PostgreSQL gives each event a transaction of its own, kiosks in parallel. Either way each
kiosk hears its verdicts in order, and a message is acknowledged only once decided.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from broker import topics
from broker.messages import (
    Availability,
    AvailabilityState,
    CodeScan,
    Reason,
    SessionDone,
    Verdict,
    encode,
)
from central.abuse import AbusePolicy
from central.clock import FakeClock
from central.consumer import Consumer
from central.mqtt import Inbound
from central.security import ALERT_AUTO_BLOCK
from central.storage.base import CheckoutRow
from central.storage.postgres import PostgresTx
from central.storage.scan_batch import SnapshotTx
from central.storage.sqlite import SqliteStore, SqliteTx
from central.tokens import TokenSigner
from tests.unit.central.support import (
    ADA,
    DRILL,
    GRACE,
    KIOSK_A,
    KIOSK_B,
    RAKE,
    SAW,
    SHELF,
    AnyStore,
    code_scan,
    issue_pass,
    query,
    session_done,
)


@dataclass
class Wire:
    """The consumer's publisher: records what it sends and what it acknowledges."""

    published: list[tuple[str, bytes, bool]] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        self.published.append((topic, payload, retain))

    def ack(self, message: Inbound) -> None:
        self.acked.append(message.mid)

    def verdicts(self, kiosk_id: str) -> list[Verdict]:
        return [
            Verdict.model_validate_json(payload)
            for topic, payload, _ in self.published
            if topic == topics.verdict(kiosk_id)
        ]

    def availability(self) -> list[Availability]:
        return [
            Availability.model_validate_json(payload)
            for topic, payload, retain in self.published
            if topic.endswith("/availability") and retain
        ]


def inbound(events: list[CodeScan | SessionDone], first_mid: int = 1) -> list[Inbound]:
    return [
        Inbound(topics.scan(event.kiosk_id), encode(event), mid, 1)
        for mid, event in enumerate(events, start=first_mid)
    ]


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def consumer(library: AnyStore, signer: TokenSigner, clock: FakeClock, wire: Wire) -> Consumer:
    return Consumer(library, signer, clock, wire)


def reasons(verdicts: list[Verdict]) -> list[Reason]:
    return [verdict.reason for verdict in verdicts]


async def test_a_batch_from_two_kiosks_is_answered_in_order_and_acked(
    library: AnyStore, consumer: Consumer, wire: Wire, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    _, ada = await issue_pass(library, signer, ADA, now)
    _, grace = await issue_pass(library, signer, GRACE, now)
    batch = inbound(
        [
            code_scan(KIOSK_A, ada, now),
            code_scan(KIOSK_B, grace, now),
            code_scan(KIOSK_A, signer.label(DRILL, 1), now),
            code_scan(KIOSK_B, signer.label(SAW, 1), now),
            session_done(KIOSK_A, now),
        ]
    )
    await consumer.handle(batch)
    assert reasons(wire.verdicts(KIOSK_A)) == [
        Reason.SESSION_OPENED,
        Reason.CHECKED_OUT,
        Reason.SESSION_CLOSED,
    ]
    assert reasons(wire.verdicts(KIOSK_B)) == [Reason.SESSION_OPENED, Reason.CHECKED_OUT]
    assert sorted((a.item_id, a.state, a.shelf_id) for a in wire.availability()) == [
        (DRILL, AvailabilityState.CHECKED_OUT, SHELF),
        (SAW, AvailabilityState.CHECKED_OUT, SHELF),
    ]
    assert sorted(wire.acked) == [1, 2, 3, 4, 5]
    assert consumer.counts == {"SESSION_OPENED": 2, "CHECKED_OUT": 2, "SESSION_CLOSED": 1}
    held = await query(library, "SELECT item_id, member_id FROM checkouts ORDER BY item_id")
    assert held == [(DRILL, ADA), (SAW, GRACE)]


async def test_a_redelivered_batch_gets_the_same_verdicts_and_no_second_effect(
    library: AnyStore, consumer: Consumer, wire: Wire, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    _, ada = await issue_pass(library, signer, ADA, now)
    batch = inbound([code_scan(KIOSK_A, ada, now), code_scan(KIOSK_A, signer.label(DRILL, 1), now)])
    await consumer.handle(batch)
    first = wire.verdicts(KIOSK_A)
    clock.advance(5)
    await consumer.handle(batch)
    again = wire.verdicts(KIOSK_A)[len(first) :]
    assert again == first
    assert consumer.counts["replayed"] == 2
    assert wire.acked == [1, 2, 1, 2]
    assert await query(library, "SELECT count(*) FROM checkouts") == [(1,)]
    assert await query(library, "SELECT count(*) FROM scan_events") == [(2,)]


async def test_broken_scans_are_answered_malformed_or_dropped_and_acked(
    library: AnyStore, consumer: Consumer, wire: Wire, clock: FakeClock
) -> None:
    event_id = "0123456789abcdef0123456789abcdef"
    scan_topic = topics.scan(KIOSK_A)
    no_code = json.dumps({"v": 1, "type": "code", "event_id": event_id}).encode()
    batch = [
        # An event id to answer, but no code: the kiosk hears MALFORMED.
        Inbound(scan_topic, no_code, 1, 1),
        # Not even JSON: nobody to answer, so it is dropped (and counted).
        Inbound(scan_topic, b"{not json", 2, 1),
    ]
    await consumer.handle(batch)
    # Nothing reached the database: refusals are counted in memory, and written as one
    # aggregated row per kiosk when the window closes.
    assert await query(library, "SELECT count(*) FROM scan_events") == [(0,)]
    await consumer.flush_drops(everything=True)
    [verdict] = wire.verdicts(KIOSK_A)
    assert (verdict.event_id, verdict.reason, verdict.accepted) == (
        event_id,
        Reason.MALFORMED,
        False,
    )
    assert sorted(wire.acked) == [1, 2]
    dropped = await query(
        library, "SELECT actor, kiosk_id, detail FROM qr_audit_log WHERE action = 'scan.dropped'"
    )
    [(actor, kiosk_id, detail)] = dropped
    assert (actor, kiosk_id) == ("system", KIOSK_A)
    assert json.loads(detail) == {"counts": {"bad_fields": 1, "not_json": 1}, "total": 2}


async def test_a_write_the_constraints_refuse_is_undone_and_decided_again(
    library: AnyStore,
    consumer: Consumer,
    wire: Wire,
    clock: FakeClock,
    signer: TokenSigner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = clock.now()
    _, ada = await issue_pass(library, signer, ADA, now)
    _, grace = await issue_pass(library, signer, GRACE, now)
    await consumer.handle(
        inbound(
            [
                code_scan(KIOSK_A, ada, now),
                code_scan(KIOSK_A, signer.label(DRILL, 1), now),
                code_scan(KIOSK_B, grace, now),
            ]
        )
    )
    # A logic slip: the first look at the drill's open checkout misses Ada's. Only the
    # database's one-open-checkout-per-item index stands between Grace and the drill.
    # On PostgreSQL a batch reads it from the batch's snapshot (SnapshotTx), a scan decided
    # alone from the database (PostgresTx): the slip is in both.
    tx_classes: list[type[SqliteTx] | type[PostgresTx]] = (
        [SqliteTx] if isinstance(library, SqliteStore) else [SnapshotTx, PostgresTx]
    )
    slipped: list[str] = []

    def slip(read: Callable[[Any, str], Awaitable[CheckoutRow | None]]) -> object:
        async def open_checkout(self: Any, item_id: str) -> CheckoutRow | None:
            if item_id not in slipped:
                slipped.append(item_id)
                return None
            return await read(self, item_id)

        return open_checkout

    for tx_class in tx_classes:
        monkeypatch.setattr(tx_class, "open_checkout", slip(tx_class.open_checkout))
    await consumer.handle(
        inbound(
            [
                code_scan(KIOSK_B, signer.label(SAW, 1), now),
                code_scan(KIOSK_B, signer.label(DRILL, 1), now),
            ],
            first_mid=4,
        )
    )
    assert slipped == [SAW, DRILL]
    # SAW's slip was harmless (it was free); the drill's was refused, undone alone, and
    # decided again against Ada's checkout: Grace joins its waitlist.
    assert reasons(wire.verdicts(KIOSK_B)) == [
        Reason.SESSION_OPENED,
        Reason.CHECKED_OUT,
        Reason.HOLD_PLACED,
    ]
    assert consumer.counts["conflict"] == 1
    assert sorted(wire.acked) == [1, 2, 3, 4, 5]
    held = await query(library, "SELECT item_id, member_id FROM checkouts ORDER BY item_id")
    assert held == [(DRILL, ADA), (SAW, GRACE)]
    decided = await query(library, "SELECT count(*) FROM scan_events")
    assert decided == [(5,)]


async def drain(consumer: Consumer) -> None:
    """Run the consumer until nothing waits, then stop it."""
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(60):
            while consumer.depth:  # noqa: ASYNC110 - depth is a counter, not an event
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_one_kiosks_backlog_does_not_delay_another_kiosks_scan(
    library: AnyStore, signer: TokenSigner, clock: FakeClock, wire: Wire
) -> None:
    consumer = Consumer(library, signer, clock, wire, kiosk_share=8)
    rake = signer.label(RAKE, 1)
    now = clock.now()
    for message in inbound([code_scan(KIOSK_A, rake, now) for _ in range(500)]):
        consumer.submit(message)
    late_comer = code_scan(KIOSK_B, rake, now)
    [message] = inbound([late_comer], first_mid=1000)
    consumer.submit(message)
    assert consumer.depth == 501
    await drain(consumer)
    order = [
        Verdict.model_validate_json(payload).event_id
        for topic, payload, _ in wire.published
        if topic.endswith("/verdict")
    ]
    assert len(order) == 501
    # KIOSK-B's one scan went into the first batch, behind at most KIOSK-A's share of it.
    assert order.index(late_comer.event_id) <= 8
    assert len(wire.acked) == 501


async def test_a_kiosks_backlog_beyond_its_bound_is_shed_and_counted_never_an_outbox_resend(
    library: AnyStore, signer: TokenSigner, clock: FakeClock, wire: Wire
) -> None:
    rake = signer.label(RAKE, 1)
    now = clock.now()
    # An honest kiosk back from an outage re-sends a few hundred queued returns: all kept.
    consumer = Consumer(library, signer, clock, wire)
    resend = inbound([code_scan(KIOSK_A, rake, now, queued=True) for _ in range(300)])
    for message in resend:
        consumer.submit(message)
    assert consumer.depth == 300
    await drain(consumer)
    assert len(wire.verdicts(KIOSK_A)) == 300
    assert consumer.counts["shed"] == 0
    # A kiosk holding more than its bound: the excess is acked and counted, not queued.
    flooded = Consumer(library, signer, clock, wire, kiosk_backlog=100)
    flood = inbound([code_scan(KIOSK_B, rake, now) for _ in range(150)], first_mid=1000)
    for message in flood:
        flooded.submit(message)
    assert flooded.depth == 100
    assert flooded.counts["shed"] == 50
    await drain(flooded)
    assert len(wire.verdicts(KIOSK_B)) == 100
    await flooded.flush_drops(everything=True)
    [detail] = await query(library, "SELECT detail FROM qr_audit_log WHERE action = 'scan.dropped'")
    assert json.loads(detail[0]) == {"counts": {"shed": 50}, "total": 50}


async def test_garbage_is_counted_in_memory_and_blocks_its_kiosk_with_one_alert(
    library: AnyStore, signer: TokenSigner, clock: FakeClock, wire: Wire
) -> None:
    consumer = Consumer(
        library, signer, clock, wire, abuse_policy=AbusePolicy(block_after=10, answers_per_window=3)
    )
    garbage = [Inbound(topics.scan(KIOSK_A), b"{not json", mid, 1) for mid in range(1, 11)]
    await consumer.handle(garbage)
    # Blocked at the tenth; from then on its scans are dropped before any work.
    consumer.submit(Inbound(topics.scan(KIOSK_A), b"{not json", 11, 1))
    assert consumer.depth == 0
    assert consumer.counts["blocked"] == 1
    before = await query(library, "SELECT count(*) FROM qr_audit_log")
    await consumer.flush_drops(everything=True)
    after = await query(
        library,
        "SELECT action, reason, kiosk_id FROM qr_audit_log"
        " WHERE action IN ('kiosk.block', 'security.alert', 'scan.dropped')"
        " ORDER BY seq",
    )
    assert [(action, kiosk) for action, _, kiosk in after] == [
        ("kiosk.block", KIOSK_A),
        ("security.alert", KIOSK_A),
        ("scan.dropped", KIOSK_A),
    ]
    assert after[1][1] == ALERT_AUTO_BLOCK
    assert len(await query(library, "SELECT seq FROM qr_audit_log")) == before[0][0] + 3
    [(blocked_until,)] = await query(
        library, "SELECT blocked_until FROM kiosks WHERE kiosk_id = ?", KIOSK_A
    )
    assert blocked_until is not None
    alerts = [payload for topic, payload, _ in wire.published if topic == topics.ALERTS]
    assert len(alerts) == 1
    assert sorted(wire.acked) == list(range(1, 12))


async def test_a_kiosk_crossing_the_garbage_threshold_is_shut_out_before_any_flush(
    library: AnyStore, signer: TokenSigner, clock: FakeClock, wire: Wire
) -> None:
    consumer = Consumer(library, signer, clock, wire, abuse_policy=AbusePolicy(block_after=10))
    shut_out: list[tuple[str, float]] = []
    consumer.on_blocked = lambda kiosk, until: shut_out.append(
        (kiosk, (until - clock.now()).total_seconds())
    )
    rake = signer.label(RAKE, 1)
    now = clock.now()
    # Scans from both kiosks wait to be decided; then KIOSK-A sends garbage.
    waiting = inbound([code_scan(KIOSK_A, rake, now) for _ in range(30)])
    waiting += inbound([code_scan(KIOSK_B, rake, now)], first_mid=100)
    for message in waiting:
        consumer.submit(message)
    for mid in range(200, 209):
        consumer.submit(Inbound(topics.scan(KIOSK_A), b"{not json", mid, 1))
    assert shut_out == []
    assert consumer.depth == 31
    consumer.submit(Inbound(topics.scan(KIOSK_A), b"{not json", 209, 1))
    # At the tenth, with no flush yet: shut out at the broker for the block's length, and
    # what it had queued dropped unread (acked); the neighbour's scan still waits.
    assert shut_out == [(KIOSK_A, 15 * 60.0)]
    assert consumer.depth == 1
    assert consumer.counts["blocked"] == 30
    assert set(range(1, 31)) <= set(wire.acked)
    # The loop writes the block (audit rows, alert) by itself, with the next batch.
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(10):
            while not [topic for topic, _, _ in wire.published if topic == topics.ALERTS]:  # noqa: ASYNC110 - filled by the consumer
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert reasons(wire.verdicts(KIOSK_B)) == [Reason.NO_SESSION]
    assert not any(v.reason is Reason.NO_SESSION for v in wire.verdicts(KIOSK_A))
    [(blocked_until,)] = await query(
        library, "SELECT blocked_until FROM kiosks WHERE kiosk_id = ?", KIOSK_A
    )
    assert blocked_until is not None


async def test_a_kiosk_unblocked_anywhere_is_heard_in_full_at_its_next_scan(
    library: AnyStore, signer: TokenSigner, clock: FakeClock, wire: Wire
) -> None:
    consumer = Consumer(
        library, signer, clock, wire, abuse_policy=AbusePolicy(answers_per_window=5)
    )
    rake = signer.label(RAKE, 1)
    now = clock.now()
    async with library.write() as tx:
        await tx.set_blocked_until(KIOSK_A, now + timedelta(hours=1))
    [blocked] = inbound([code_scan(KIOSK_A, rake, now)])
    await consumer.handle([blocked])
    assert reasons(wire.verdicts(KIOSK_A)) == [Reason.KIOSK_BLOCKED]
    # Held now: beyond its small budget, its traffic would be dropped unread. An admin
    # (on this instance or another) lifts the block in the database.
    async with library.write() as tx:
        await tx.set_blocked_until(KIOSK_A, None)
    [first] = inbound([code_scan(KIOSK_A, rake, now)], first_mid=2)
    consumer.submit(first)
    await drain(consumer)
    for message in inbound([code_scan(KIOSK_A, rake, now) for _ in range(30)], first_mid=3):
        consumer.submit(message)
    await drain(consumer)
    assert reasons(wire.verdicts(KIOSK_A)) == [Reason.KIOSK_BLOCKED] + [Reason.NO_SESSION] * 31
    assert consumer.counts["blocked"] == 0
