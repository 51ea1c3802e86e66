"""Rate limits, automatic kiosk blocks and invalidating passes, on both backends, clock in hand."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from broker.messages import CodeScan, Reason, SessionDone
from central import ledger, security
from central.clock import FakeClock
from central.security import Limits
from central.storage.base import Store
from central.storage.postgres import PostgresStore
from central.tokens import TokenSigner
from testkit.postgres import fresh_database
from tests.unit.central.support import (
    ADA,
    ADMIN,
    DRILL,
    GRACE,
    KIOSK_A,
    KIOSK_B,
    RAKE,
    SAW,
    AnyStore,
    code_scan,
    issue_pass,
    query,
    seed,
)

OFF = Limits(kiosk_per_min=0, member_per_min=0, block_after=0)


async def decide(
    store: Store,
    signer: TokenSigner,
    event: CodeScan | SessionDone,
    clock: FakeClock,
    limits: Limits,
) -> ledger.Outcome:
    """Verify and apply one event with ``limits``, the way the consumer does."""
    now = clock.now()
    token = signer.verify(event.code, now) if isinstance(event, CodeScan) else None
    async with store.write() as tx:
        if not store.group_commit:
            return await ledger.apply(tx, event, token, now, limits)
        async with store.savepoint(tx):
            return await ledger.apply(tx, event, token, now, limits)


async def test_a_kiosk_gets_its_burst_then_one_scan_per_refill(
    library: AnyStore, signer: TokenSigner, clock: FakeClock
) -> None:
    limits = Limits(kiosk_per_min=6, kiosk_burst=3, member_per_min=0, block_after=0)
    drill = signer.label(DRILL, 1)

    async def reason(kiosk: str = KIOSK_A) -> Reason:
        outcome = await decide(library, signer, code_scan(kiosk, drill, clock.now()), clock, limits)
        return outcome.verdict.reason

    assert [await reason() for _ in range(4)] == [Reason.NO_SESSION] * 3 + [Reason.RATE_LIMITED]
    # Another kiosk has its own bucket.
    assert await reason(KIOSK_B) is Reason.NO_SESSION
    clock.advance(9)  # 6 a minute: one scan every 10 s
    assert await reason() is Reason.RATE_LIMITED
    clock.advance(1)
    assert [await reason(), await reason()] == [Reason.NO_SESSION, Reason.RATE_LIMITED]
    clock.advance(3600)  # a long rest refills the burst, no more
    assert [await reason() for _ in range(4)] == [Reason.NO_SESSION] * 3 + [Reason.RATE_LIMITED]


async def test_a_rate_limited_pass_is_not_used_up(
    library: AnyStore, signer: TokenSigner, clock: FakeClock
) -> None:
    limits = Limits(kiosk_per_min=60, kiosk_burst=1, member_per_min=0, block_after=0)
    _, code = await issue_pass(library, signer, ADA, clock.now())
    first = await decide(
        library, signer, code_scan(KIOSK_A, signer.label(SAW, 1), clock.now()), clock, limits
    )
    assert first.verdict.reason is Reason.NO_SESSION
    limited = await decide(library, signer, code_scan(KIOSK_A, code, clock.now()), clock, limits)
    assert limited.verdict.reason is Reason.RATE_LIMITED
    clock.advance(1)
    opened = await decide(library, signer, code_scan(KIOSK_A, code, clock.now()), clock, limits)
    assert opened.verdict.reason is Reason.SESSION_OPENED


async def test_one_member_is_limited_across_kiosks(
    library: AnyStore, signer: TokenSigner, clock: FakeClock
) -> None:
    limits = Limits(kiosk_per_min=0, member_per_min=2, member_burst=2, block_after=0)
    codes = [(await issue_pass(library, signer, ADA, clock.now()))[1] for _ in range(3)]
    grace_code = (await issue_pass(library, signer, GRACE, clock.now()))[1]
    reasons = [
        (
            await decide(library, signer, code_scan(kiosk, code, clock.now()), clock, limits)
        ).verdict.reason
        for kiosk, code in zip((KIOSK_A, KIOSK_B, KIOSK_A), codes, strict=True)
    ]
    assert reasons == [Reason.SESSION_OPENED, Reason.SESSION_OPENED, Reason.RATE_LIMITED]
    # Checkouts in Ada's session count against Ada too.
    drill = await decide(
        library, signer, code_scan(KIOSK_B, signer.label(DRILL, 1), clock.now()), clock, limits
    )
    assert drill.verdict.reason is Reason.RATE_LIMITED
    # Grace is not Ada.
    other = await decide(
        library, signer, code_scan(KIOSK_A, grace_code, clock.now()), clock, limits
    )
    assert other.verdict.reason is Reason.SESSION_OPENED
    clock.advance(30)  # two a minute: one more scan (inside the 60 s session)
    drill = await decide(
        library, signer, code_scan(KIOSK_B, signer.label(DRILL, 1), clock.now()), clock, limits
    )
    assert drill.verdict.reason is Reason.CHECKED_OUT


async def test_repeated_forgeries_block_the_kiosk_and_raise_one_alert(
    library: AnyStore, signer: TokenSigner, clock: FakeClock
) -> None:
    limits = Limits(
        kiosk_per_min=0,
        member_per_min=0,
        block_after=5,
        block_window=timedelta(seconds=60),
        block_first=timedelta(seconds=30),
    )
    forged = signer.label(DRILL, 1)[:-4] + "AAAA"
    _, used = await issue_pass(library, signer, ADA, clock.now())
    await decide(library, signer, code_scan(KIOSK_B, used, clock.now()), clock, limits)

    async def scan(code: str, kiosk: str = KIOSK_A) -> ledger.Outcome:
        return await decide(library, signer, code_scan(kiosk, code, clock.now()), clock, limits)

    # Four failures, then a pause longer than the window: the old ones no longer count.
    for code in (forged, used, "CS1.L.K1.NOPE", forged):
        assert (await scan(code)).alerts == []
        clock.advance(10)
    clock.advance(60)
    outcomes = [await scan(c) for c in (forged, used, forged, "CS1.Q", forged)]
    assert [o.verdict.reason for o in outcomes] == [
        Reason.BAD_SIGNATURE,
        Reason.ALREADY_USED,
        Reason.BAD_SIGNATURE,
        Reason.UNKNOWN_CODE,
        Reason.BAD_SIGNATURE,
    ]
    assert [len(o.alerts) for o in outcomes] == [0, 0, 0, 0, 1]
    alert = outcomes[-1].alerts[0]
    assert (alert.kind, alert.kiosk_id) == (security.ALERT_AUTO_BLOCK, KIOSK_A)

    blocked = await scan(signer.label(SAW, 1))
    assert (blocked.verdict.reason, blocked.alerts) == (Reason.KIOSK_BLOCKED, [])
    # The other kiosk on the shelf is not affected.
    assert (await scan(signer.label(SAW, 1), KIOSK_B)).verdict.reason is Reason.NO_SESSION
    rows = await query(
        library,
        "SELECT actor, action, reason, kiosk_id FROM qr_audit_log"
        " WHERE action IN ('kiosk.block', 'security.alert') ORDER BY seq",
    )
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("system", "kiosk.block", KIOSK_A),
        ("system", "security.alert", KIOSK_A),
    ]
    assert rows[1][2] == security.ALERT_AUTO_BLOCK
    clock.advance(30)  # the first cool-down is short
    assert (await scan(signer.label(SAW, 1))).verdict.reason is Reason.NO_SESSION


async def test_forgeries_cool_a_kiosk_down_briefly_then_longer_to_a_cap(
    library: AnyStore, signer: TokenSigner, clock: FakeClock
) -> None:
    limits = Limits(
        kiosk_per_min=0,
        member_per_min=0,
        block_after=3,
        block_window=timedelta(seconds=60),
        block_first=timedelta(seconds=5),
        block_for=timedelta(seconds=120),
        block_forget=timedelta(minutes=10),
    )
    forged = signer.label(DRILL, 1)[:-4] + "AAAA"
    label = signer.label(SAW, 1)

    async def scan(code: str) -> Reason:
        event = code_scan(KIOSK_A, code, clock.now())
        return (await decide(library, signer, event, clock, limits)).verdict.reason

    async def blocked_for() -> int:
        """Seconds the kiosk stays refused after a run of forgeries (probed each second)."""
        assert [await scan(forged) for _ in range(3)] == [Reason.BAD_SIGNATURE] * 3
        seconds = 0
        while await scan(label) is Reason.KIOSK_BLOCKED:
            clock.advance(1)
            seconds += 1
        return seconds

    # A sheet of forgeries held up again and again: 5 s, 10 s, 20 s, ... never past 2 min.
    assert [await blocked_for() for _ in range(7)] == [5, 10, 20, 40, 80, 120, 120]
    alerts = await query(
        library, "SELECT count(*) FROM qr_audit_log WHERE action = 'security.alert'"
    )
    assert alerts == [(1,)], "one alert for the run; each cool-down has its audit row"
    # Quiet for longer than block_forget: the next run starts short again.
    clock.advance(11 * 60)
    assert await blocked_for() == 5


async def test_a_members_valid_pass_lifts_a_cool_down_and_other_codes_do_not(
    library: AnyStore, signer: TokenSigner, clock: FakeClock
) -> None:
    limits = Limits(
        kiosk_per_min=0,
        member_per_min=0,
        block_after=3,
        block_first=timedelta(seconds=60),
    )
    forged = signer.label(DRILL, 1)[:-4] + "AAAA"
    _, used = await issue_pass(library, signer, GRACE, clock.now())
    await decide(library, signer, code_scan(KIOSK_B, used, clock.now()), clock, limits)
    _, expired = await issue_pass(library, signer, ADA, clock.now(), ttl=timedelta(seconds=2))

    async def scan(code: str) -> Reason:
        event = code_scan(KIOSK_A, code, clock.now())
        return (await decide(library, signer, event, clock, limits)).verdict.reason

    assert [await scan(forged) for _ in range(3)] == [Reason.BAD_SIGNATURE] * 3
    clock.advance(5)
    # A used, expired or forged pass, or a label, leaves the cool-down in force.
    forged_pass = (await issue_pass(library, signer, ADA, clock.now()))[1][:-4] + "AAAA"
    for code in (used, expired, forged_pass, signer.label(SAW, 1)):
        assert await scan(code) is Reason.KIOSK_BLOCKED
    # The next member with a pass that opens a session ends it for everyone.
    _, fresh = await issue_pass(library, signer, ADA, clock.now())
    assert await scan(fresh) is Reason.SESSION_OPENED
    assert await scan(signer.label(SAW, 1)) is Reason.CHECKED_OUT
    rows = await query(
        library,
        "SELECT actor, action FROM qr_audit_log WHERE action LIKE 'kiosk.%block' ORDER BY seq",
    )
    assert rows == [("system", "kiosk.block"), ("system", "kiosk.unblock")]
    # The forgeries before the pass are forgiven: one more does not cool it down again.
    assert await scan(forged) is Reason.BAD_SIGNATURE
    assert await scan(signer.label(RAKE, 1)) is Reason.CHECKED_OUT


async def test_auto_block_cools_a_kiosk_down_from_outside_a_scan(
    library: AnyStore, signer: TokenSigner, clock: FakeClock
) -> None:
    # What the consumer calls for a kiosk it finds flooding: the same graduated cool-down.
    limits = Limits(block_first=timedelta(seconds=5))
    first = await security.auto_block(library, limits, KIOSK_A, clock.now(), "flood")
    assert [(a.kind, a.kiosk_id) for a in first] == [(security.ALERT_AUTO_BLOCK, KIOSK_A)]
    label = signer.label(SAW, 1)

    async def reason() -> Reason:
        event = code_scan(KIOSK_A, label, clock.now())
        return (await decide(library, signer, event, clock, OFF)).verdict.reason

    assert await reason() is Reason.KIOSK_BLOCKED
    clock.advance(5)
    assert await reason() is Reason.NO_SESSION
    again = await security.auto_block(library, limits, KIOSK_A, clock.now(), "flood")
    assert again == []  # the run's alert was raised once
    clock.advance(9)
    assert await reason() is Reason.KIOSK_BLOCKED  # ten seconds, the second time
    assert await security.auto_block(library, limits, "KIOSK-NOPE", clock.now(), "x") == []


async def test_a_block_set_by_a_person_is_not_lifted_by_a_pass(
    library: AnyStore, signer: TokenSigner, clock: FakeClock
) -> None:
    now = clock.now()
    assert await security.set_kiosk_block(
        library, KIOSK_A, now + timedelta(hours=1), now, ADMIN, "stolen"
    )
    _, fresh = await issue_pass(library, signer, ADA, now)
    refused = await decide(library, signer, code_scan(KIOSK_A, fresh, now), clock, Limits())
    assert refused.verdict.reason is Reason.KIOSK_BLOCKED
    # And the pass is still good elsewhere: the refusal used nothing up.
    opened = await decide(library, signer, code_scan(KIOSK_B, fresh, now), clock, Limits())
    assert opened.verdict.reason is Reason.SESSION_OPENED


async def test_a_replayed_pass_never_uses_up_its_members_rate(
    library: AnyStore, signer: TokenSigner, clock: FakeClock
) -> None:
    limits = Limits(kiosk_per_min=0, member_per_min=1, member_burst=2, block_after=0)
    _, used = await issue_pass(library, signer, ADA, clock.now())

    async def scan(code: str, kiosk: str = KIOSK_A) -> Reason:
        event = code_scan(kiosk, code, clock.now())
        return (await decide(library, signer, event, clock, limits)).verdict.reason

    assert await scan(used) is Reason.SESSION_OPENED
    # Someone replays Ada's used pass at another kiosk, over and over.
    assert [await scan(used, KIOSK_B) for _ in range(20)] == [Reason.ALREADY_USED] * 20
    # Ada's own next scan is hers to make: one token left of her burst of two.
    assert await scan(signer.label(DRILL, 1)) is Reason.CHECKED_OUT
    # And her limit still holds for what she does.
    assert await scan(signer.label(SAW, 1)) is Reason.RATE_LIMITED


async def test_honest_refusals_never_block_a_kiosk(
    library: AnyStore, signer: TokenSigner, clock: FakeClock
) -> None:
    limits = Limits(kiosk_per_min=0, member_per_min=0, block_after=3)
    label = signer.label(DRILL, 1)
    for _ in range(10):
        outcome = await decide(
            library, signer, code_scan(KIOSK_A, label, clock.now()), clock, limits
        )
        assert (outcome.verdict.reason, outcome.alerts) == (Reason.NO_SESSION, [])


async def test_admin_blocks_and_unblocks_a_kiosk_with_an_audit_trail(
    library: AnyStore, signer: TokenSigner, clock: FakeClock
) -> None:
    now = clock.now()
    label = signer.label(DRILL, 1)
    assert await security.set_kiosk_block(
        library, KIOSK_A, now + timedelta(hours=1), now, ADMIN, "stolen"
    )
    assert not await security.set_kiosk_block(library, "KIOSK-NOPE", None, now, ADMIN, "typo")
    refused = await decide(library, signer, code_scan(KIOSK_A, label, now), clock, OFF)
    assert refused.verdict.reason is Reason.KIOSK_BLOCKED
    assert await security.set_kiosk_block(library, KIOSK_A, None, now, ADMIN, "found it")
    back = await decide(library, signer, code_scan(KIOSK_A, label, now), clock, OFF)
    assert back.verdict.reason is Reason.NO_SESSION
    rows = await query(
        library,
        "SELECT actor, action, reason, kiosk_id FROM qr_audit_log"
        " WHERE action LIKE 'kiosk.%block' ORDER BY seq",
    )
    assert rows == [
        (ADMIN, "kiosk.block", "stolen", KIOSK_A),
        (ADMIN, "kiosk.unblock", "found it", KIOSK_A),
    ]


async def test_invalidate_all_refuses_every_outstanding_pass_and_counts_only_those(
    library: AnyStore, signer: TokenSigner, clock: FakeClock
) -> None:
    now = clock.now()
    _, used = await issue_pass(library, signer, ADA, now)
    await decide(library, signer, code_scan(KIOSK_B, used, now), clock, OFF)
    await issue_pass(library, signer, GRACE, now - timedelta(hours=2), ttl=timedelta(hours=1))
    outstanding = [(await issue_pass(library, signer, m, now))[1] for m in (ADA, GRACE, ADA)]

    assert await security.invalidate_all_passes(library, now, ADMIN, "leaked screenshot") == 3
    assert await security.invalidate_all_passes(library, now, ADMIN, "again") == 0
    for code in outstanding:
        outcome = await decide(library, signer, code_scan(KIOSK_A, code, now), clock, OFF)
        assert outcome.verdict.reason is Reason.REVOKED
    rows = await query(
        library,
        "SELECT actor, reason, detail FROM qr_audit_log WHERE action = 'pass.invalidate_all'"
        " ORDER BY seq",
    )
    assert rows == [
        (ADMIN, "leaked screenshot", '{"count": 3}'),
        (ADMIN, "again", '{"count": 0}'),
    ]
    # Passes issued afterwards work.
    _, fresh = await issue_pass(library, signer, ADA, now)
    opened = await decide(library, signer, code_scan(KIOSK_A, fresh, now), clock, OFF)
    assert opened.verdict.reason is Reason.SESSION_OPENED


@pytest.mark.parametrize("backend", ["postgres"])
async def test_two_centrals_share_one_kiosk_bucket(
    backend: str, tmp_path: Path, signer: TokenSigner, clock: FakeClock
) -> None:
    """Two instances (two pools) racing one kiosk's scans grant exactly the burst."""
    limits = Limits(kiosk_per_min=0.001, kiosk_burst=10, member_per_min=0, block_after=0)
    label = signer.label(DRILL, 1)
    async with two_centrals(clock) as (first, second):

        async def one(store: PostgresStore) -> Reason:
            event = code_scan(KIOSK_A, label, clock.now())
            return (await decide(store, signer, event, clock, limits)).verdict.reason

        reasons = await asyncio.gather(*(one((first, second)[n % 2]) for n in range(40)))
    assert (reasons.count(Reason.NO_SESSION), reasons.count(Reason.RATE_LIMITED)) == (10, 30)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_two_centrals_share_one_member_bucket_across_kiosks(
    backend: str, tmp_path: Path, signer: TokenSigner, clock: FakeClock
) -> None:
    """One member's passes at two kiosks, decided by two instances: exactly the burst opens.

    The kiosks' own row locks do not serialise these; only the bucket's row lock does.
    Only accepted scans use the member's rate, so each scan here is a fresh pass.
    """
    limits = Limits(kiosk_per_min=0, member_per_min=0.001, member_burst=12, block_after=0)
    async with two_centrals(clock) as (first, second):
        codes = [(await issue_pass(first, signer, ADA, clock.now()))[1] for _ in range(40)]

        async def one(n: int) -> Reason:
            event = code_scan((KIOSK_A, KIOSK_B)[n % 2], codes[n], clock.now())
            store = (first, second)[n // 2 % 2]
            return (await decide(store, signer, event, clock, limits)).verdict.reason

        reasons = await asyncio.gather(*(one(n) for n in range(40)))
    assert reasons.count(Reason.SESSION_OPENED) == 12, reasons
    assert reasons.count(Reason.RATE_LIMITED) == 28, reasons


@contextlib.asynccontextmanager
async def two_centrals(clock: FakeClock) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores (as two central instances have) on one fresh, seeded database."""
    async with fresh_database() as dsn:
        first = await PostgresStore(dsn).open()
        second = await PostgresStore(dsn).open()
        try:
            await first.migrate()
            await seed(first, clock.now())
            yield first, second
        finally:
            await first.close()
            await second.close()
