"""Both stores: audit, constraints, passes, sessions, verdicts, admin writes, availability.

Every test runs on SQLite and on PostgreSQL (the ``backend`` fixture in conftest.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.messages import AvailabilityState, Reason, Verdict
from central.clock import FakeClock
from central.errors import StorageError
from central.storage.base import AuditEntry, PassUse, Tx
from central.tokens import TokenSigner, new_id
from tests.integration.storage.support import (
    INTEGRITY_ERRORS,
    conflict,
)
from tests.unit.central.support import (
    ADA,
    ADMIN,
    DRILL,
    GRACE,
    KIOSK_A,
    KIOSK_B,
    RAKE,
    SAW,
    SHELF,
    AnyStore,
    execute,
    issue_pass,
    query,
)


async def new_session(
    store: AnyStore,
    signer: TokenSigner,
    member_id: str,
    kiosk_id: str,
    now: datetime,
) -> int:
    """A session opened directly through the store (no ledger rules)."""
    pass_id, _ = await issue_pass(store, signer, member_id, now)
    async with store.write() as tx:
        session = await tx.start_session(
            kiosk_id, member_id, pass_id, now, now + timedelta(hours=1)
        )
    return session.session_id


async def checkout(tx: Tx, item_id: str, member_id: str, session_id: int, now: datetime) -> None:
    await tx.insert_checkout(
        item_id, member_id, session_id, KIOSK_A, new_id(), now, now + timedelta(days=14)
    )


async def open_checkouts(store: AnyStore) -> list[tuple[str, str]]:
    rows = await query(
        store,
        "SELECT item_id, member_id FROM checkouts WHERE returned_at IS NULL ORDER BY item_id",
    )
    return [(row[0], row[1]) for row in rows]


def verdict(event_id: str, now: datetime, reason: Reason = Reason.NO_SESSION) -> Verdict:
    return Verdict(
        event_id=event_id,
        kiosk_id=KIOSK_A,
        reason=reason,
        accepted=reason.accepted,
        session_open=False,
        decided_at=now,
    )


# --- the audit log ----------------------------------------------------------------------


async def test_admin_actions_are_audited_in_order(library: AnyStore) -> None:
    actions = [(entry.actor, entry.action) for entry in await library.audit_tail(100)]
    assert actions == [
        (ADMIN, "shelf.add"),
        (ADMIN, "item.add"),
        (ADMIN, "item.add"),
        (ADMIN, "item.add"),
        (ADMIN, "member.add"),
        (ADMIN, "member.add"),
        (ADMIN, "kiosk.enrol"),
        (ADMIN, "kiosk.enrol"),
    ]
    assert [entry.action for entry in await library.audit_tail(2)] == ["kiosk.enrol"] * 2


async def test_audit_entries_read_back_as_written(library: AnyStore) -> None:
    at = datetime(2026, 1, 6, 12, 30, 0, 250, tzinfo=UTC)
    entry = AuditEntry(
        at,
        "kiosk:KIOSK-A",
        "scan.code",
        reason="CHECKED_OUT",
        kiosk_id=KIOSK_A,
        member_id=ADA,
        item_id=DRILL,
        event_id="evt-00000001",
        detail={"code": "abc", "n": 1},
    )
    async with library.write() as tx:
        await tx.audit(entry)
    assert await library.audit_tail(1) == [entry]


# --- one open checkout per item ---------------------------------------------------------


async def test_the_database_refuses_a_second_open_checkout_of_one_item(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    ada = await new_session(library, signer, ADA, KIOSK_A, now)
    grace = await new_session(library, signer, GRACE, KIOSK_B, now)
    async with library.write() as tx:
        await checkout(tx, DRILL, ADA, ada, now)
        async with conflict(library, tx):
            await checkout(tx, DRILL, GRACE, grace, now)
    assert await open_checkouts(library) == [(DRILL, ADA)]
    # Also across transactions.
    async with library.write() as tx, conflict(library, tx):
        await checkout(tx, DRILL, ADA, ada, now)
    assert await open_checkouts(library) == [(DRILL, ADA)]


async def test_a_returned_item_can_be_checked_out_again(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    ada = await new_session(library, signer, ADA, KIOSK_A, now)
    grace = await new_session(library, signer, GRACE, KIOSK_B, now)
    async with library.write() as tx:
        await checkout(tx, DRILL, ADA, ada, now)
        first = await tx.open_checkout(DRILL)
        assert first is not None
        assert (first.member_id, first.checked_out_at) == (ADA, now)
        await tx.close_checkout(first.checkout_id, now + timedelta(hours=1), new_id(), KIOSK_A)
        assert await tx.open_checkout(DRILL) is None
        await checkout(tx, DRILL, GRACE, grace, now + timedelta(hours=2))
    assert await open_checkouts(library) == [(DRILL, GRACE)]
    assert await query(library, "SELECT count(*) FROM checkouts WHERE item_id = ?", DRILL) == [(2,)]


async def test_closing_a_checkout_twice_is_refused(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    ada = await new_session(library, signer, ADA, KIOSK_A, now)
    async with library.write() as tx:
        await checkout(tx, DRILL, ADA, ada, now)
        row = await tx.open_checkout(DRILL)
        assert row is not None
        await tx.close_checkout(row.checkout_id, now, new_id(), KIOSK_A)
        with pytest.raises(StorageError):
            await tx.close_checkout(row.checkout_id, now, new_id(), KIOSK_A)


async def test_open_checkout_count_counts_only_what_a_member_holds(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    ada = await new_session(library, signer, ADA, KIOSK_A, now)
    async with library.write() as tx:
        for item_id in (DRILL, SAW):
            await checkout(tx, item_id, ADA, ada, now)
        assert await tx.open_checkout_count(ADA) == 2
        assert await tx.open_checkout_count(GRACE) == 0
        row = await tx.open_checkout(SAW)
        assert row is not None
        await tx.close_checkout(row.checkout_id, now, new_id(), KIOSK_A)
        assert await tx.open_checkout_count(ADA) == 1


# --- passes and sessions ----------------------------------------------------------------


async def test_a_pass_opens_only_one_session(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    pass_id, _ = await issue_pass(library, signer, ADA, now)
    async with library.write() as tx:
        await tx.start_session(KIOSK_A, ADA, pass_id, now, now + timedelta(minutes=1))
        # At another kiosk, so only the one-session-per-pass rule stands in the way.
        async with conflict(library, tx):
            await tx.start_session(KIOSK_B, ADA, pass_id, now, now + timedelta(minutes=1))
        assert await tx.open_session(KIOSK_B, now) is None


async def test_a_kiosk_has_only_one_open_session(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    first, _ = await issue_pass(library, signer, ADA, now)
    second, _ = await issue_pass(library, signer, GRACE, now)
    async with library.write() as tx:
        await tx.start_session(KIOSK_A, ADA, first, now, now + timedelta(minutes=1))
        async with conflict(library, tx):
            await tx.start_session(KIOSK_A, GRACE, second, now, now + timedelta(minutes=1))
        assert await tx.close_sessions(KIOSK_A, now) == 1
        session = await tx.start_session(KIOSK_A, GRACE, second, now, now + timedelta(minutes=1))
        assert await tx.open_session(KIOSK_A, now) == session


async def test_an_open_session_lapses_at_its_deadline_and_can_be_extended(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    pass_id, _ = await issue_pass(library, signer, ADA, now)
    deadline = now + timedelta(seconds=60)
    async with library.write() as tx:
        session = await tx.start_session(KIOSK_A, ADA, pass_id, now, deadline)
        assert await tx.open_session(KIOSK_A, deadline - timedelta(microseconds=1)) == session
        assert await tx.open_session(KIOSK_A, deadline) is None
        await tx.extend_session(session.session_id, deadline + timedelta(seconds=30))
        found = await tx.open_session(KIOSK_A, deadline)
        assert found is not None
        assert found.expires_at == deadline + timedelta(seconds=30)
        assert await tx.close_sessions(KIOSK_A, deadline) == 1
        assert await tx.open_session(KIOSK_A, deadline) is None
        assert await tx.close_sessions(KIOSK_A, deadline) == 0


async def test_a_pass_is_consumed_once(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    pass_id, _ = await issue_pass(library, signer, ADA, now)
    async with library.write() as tx:
        assert await tx.consume_pass(pass_id, ADA, KIOSK_A, now) is PassUse.CONSUMED
        assert await tx.consume_pass(pass_id, ADA, KIOSK_A, now) is PassUse.ALREADY_USED
        assert await tx.consume_pass(pass_id, ADA, KIOSK_B, now) is PassUse.ALREADY_USED
    assert await query(library, "SELECT consumed_at, consumed_by FROM qr_codes") == [(now, KIOSK_A)]


async def test_an_unknown_pass_or_another_members_pass_is_unknown(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    pass_id, _ = await issue_pass(library, signer, ADA, now)
    async with library.write() as tx:
        assert await tx.consume_pass("NO-SUCH-PASS", ADA, KIOSK_A, now) is PassUse.UNKNOWN
        assert await tx.consume_pass(pass_id, GRACE, KIOSK_A, now) is PassUse.UNKNOWN
        # Neither attempt used the pass up.
        assert await tx.consume_pass(pass_id, ADA, KIOSK_A, now) is PassUse.CONSUMED


async def test_an_expired_pass_is_not_consumed(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    pass_id, _ = await issue_pass(library, signer, ADA, now, ttl=timedelta(minutes=5))
    expiry = now + timedelta(minutes=5)
    async with library.write() as tx:
        assert await tx.consume_pass(pass_id, ADA, KIOSK_A, expiry) is PassUse.EXPIRED
        assert await tx.consume_pass(pass_id, ADA, KIOSK_A, expiry + timedelta(days=1)) is (
            PassUse.EXPIRED
        )
        assert await tx.consume_pass(pass_id, ADA, KIOSK_A, expiry - timedelta(seconds=1)) is (
            PassUse.CONSUMED
        )


async def test_an_invalidated_pass_is_not_consumed(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    pass_id, _ = await issue_pass(library, signer, ADA, now)
    await execute(library, "UPDATE qr_codes SET invalidated_at = ? WHERE pass_id = ?", now, pass_id)
    async with library.write() as tx:
        assert await tx.consume_pass(pass_id, ADA, KIOSK_A, now) is PassUse.INVALIDATED
    consumed = await query(library, "SELECT consumed_at FROM qr_codes WHERE pass_id = ?", pass_id)
    assert consumed == [(None,)]


# --- verdicts and transactions ----------------------------------------------------------


async def test_a_verdict_is_saved_once_per_event(library: AnyStore, clock: FakeClock) -> None:
    now = clock.now()
    first = verdict("evt-00000001", now)
    async with library.write() as tx:
        assert await tx.find_verdict(first.kiosk_id, first.event_id) is None
        await tx.save_verdict(first, "abc", now)
    async with library.write() as tx:
        async with conflict(library, tx):
            await tx.save_verdict(verdict(first.event_id, now, Reason.CHECKED_OUT), None, now)
        assert await tx.find_verdict(first.kiosk_id, first.event_id) == first


async def save_in_savepoint(
    store: AnyStore, tx: Tx, now: datetime, *event_ids: str, fail: bool = False
) -> None:
    """Save a verdict per event id in one savepoint, then fail the step if asked."""
    async with store.savepoint(tx):
        for event_id in event_ids:
            await tx.save_verdict(verdict(event_id, now), None, now)
        if fail:
            raise RuntimeError("boom")


async def test_a_savepoint_rolls_back_only_its_own_step(
    library: AnyStore, clock: FakeClock
) -> None:
    now = clock.now()
    async with library.write() as tx:
        await tx.save_verdict(verdict("evt-kept-0001", now), None, now)
        with pytest.raises(RuntimeError, match="boom"):
            await save_in_savepoint(library, tx, now, "evt-undone-01", fail=True)
        await save_in_savepoint(library, tx, now, "evt-kept-0002")
        # A constraint failure inside a savepoint undoes its step and leaves the
        # transaction usable.
        with pytest.raises(INTEGRITY_ERRORS):
            await save_in_savepoint(library, tx, now, "evt-undone-02", "evt-kept-0001")
        await save_in_savepoint(library, tx, now, "evt-kept-0003")
    assert await query(library, "SELECT event_id FROM scan_events ORDER BY event_id") == [
        ("evt-kept-0001",),
        ("evt-kept-0002",),
        ("evt-kept-0003",),
    ]


async def fail_a_write(store: AnyStore, now: datetime) -> None:
    """Save a verdict, then fault before the transaction commits."""
    async with store.write() as tx:
        await tx.save_verdict(verdict("evt-00000001", now), None, now)
        raise RuntimeError("fault mid-batch")


async def test_a_failed_write_commits_nothing(library: AnyStore, clock: FakeClock) -> None:
    now = clock.now()
    with pytest.raises(RuntimeError, match="mid-batch"):
        await fail_a_write(library, now)
    assert await query(library, "SELECT count(*) FROM scan_events") == [(0,)]
    # The store is still usable afterwards.
    async with library.write() as tx:
        await tx.save_verdict(verdict("evt-00000001", now), None, now)
    assert await query(library, "SELECT count(*) FROM scan_events") == [(1,)]


async def save_verdicts(store: AnyStore, now: datetime, *event_ids: str) -> None:
    """Save a verdict per event id in one write, no savepoint."""
    async with store.write() as tx:
        for event_id in event_ids:
            await tx.save_verdict(verdict(event_id, now), None, now)


async def test_a_refused_write_commits_nothing_and_is_a_conflict(
    library: AnyStore, clock: FakeClock
) -> None:
    now = clock.now()
    await save_verdicts(library, now, "evt-00000001")
    # Outside a savepoint the refusal ends the whole transaction, earlier steps included.
    with pytest.raises(INTEGRITY_ERRORS) as caught:
        await save_verdicts(library, now, "evt-00000002", "evt-00000001")
    assert library.is_conflict(caught.value)
    assert await query(library, "SELECT event_id FROM scan_events") == [("evt-00000001",)]


# --- admin writes -----------------------------------------------------------------------


async def test_admin_duplicates_are_refused_as_storage_errors(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    pass_id, _ = await issue_pass(library, signer, ADA, now)
    audited = await query(library, "SELECT count(*) FROM qr_audit_log")
    with pytest.raises(StorageError):
        await library.add_shelf(SHELF, "Again", now, ADMIN)
    with pytest.raises(StorageError):
        await library.add_item(DRILL, SHELF, "Another drill", now, ADMIN)
    with pytest.raises(StorageError):
        await library.add_member(ADA, "Another Ada", now, ADMIN)
    with pytest.raises(StorageError):
        await library.add_kiosk(KIOSK_A, SHELF, now, ADMIN)
    with pytest.raises(StorageError):
        await library.issue_pass(pass_id, ADA, now, now + timedelta(hours=1), ADMIN)
    # Refused actions change nothing, not even the audit log.
    assert await query(library, "SELECT count(*) FROM qr_audit_log") == audited
    member = await library.get_member(ADA)
    assert member is not None
    assert member.name == "Ada"


async def test_admin_writes_refuse_references_to_nothing(
    library: AnyStore, clock: FakeClock
) -> None:
    now = clock.now()
    with pytest.raises(StorageError):
        await library.add_item("LADDER-01", "NO-SHELF", "Ladder", now, ADMIN)
    with pytest.raises(StorageError):
        await library.add_kiosk("KIOSK-Z", "NO-SHELF", now, ADMIN)
    with pytest.raises(StorageError):
        await library.issue_pass("PASS-X", "NO-MEMBER", now, now + timedelta(hours=1), ADMIN)
    assert await library.get_item("LADDER-01") is None


async def test_reads_return_what_admins_wrote(library: AnyStore) -> None:
    drill = await library.get_item(DRILL)
    assert drill is not None
    assert (drill.name, drill.shelf_id, drill.label_version, drill.state, drill.loan_days) == (
        "Cordless drill",
        SHELF,
        1,
        "available",
        7,
    )
    ada = await library.get_member(ADA)
    assert ada is not None
    assert (ada.name, ada.suspended, ada.checkout_limit) == ("Ada", False, 2)
    assert await library.get_member("NOBODY") is None
    configs = await library.kiosk_configs()
    assert [(c.kiosk_id, c.shelf_id, c.session_timeout_s) for c in configs] == [
        (KIOSK_A, SHELF, 60.0),
        (KIOSK_B, SHELF, 60.0),
    ]


async def test_retired_kiosks_get_no_configuration(library: AnyStore) -> None:
    await execute(library, "UPDATE kiosks SET retired = ? WHERE kiosk_id = ?", True, KIOSK_B)
    assert [c.kiosk_id for c in await library.kiosk_configs()] == [KIOSK_A]


# --- availability -----------------------------------------------------------------------


async def test_availability_shows_an_open_checkout_with_its_due_date(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    ada = await new_session(library, signer, ADA, KIOSK_A, now)
    due_at = now + timedelta(days=7, microseconds=123)
    async with library.write() as tx:
        await tx.insert_checkout(DRILL, ADA, ada, KIOSK_A, new_id(), now, due_at)
        changed = await tx.availability(DRILL, now, bump=True)
    # Seq 1 was the item's first availability, written in the transaction that added it.
    assert (changed.state, changed.due_at, changed.seq) == (
        AvailabilityState.CHECKED_OUT,
        due_at,
        2,
    )
    await execute(library, "UPDATE items SET state = 'maintenance' WHERE item_id = ?", RAKE)
    shown = {a.item_id: a for a in await library.all_availability(now)}
    assert list(shown) == [DRILL, RAKE, SAW]
    assert (shown[DRILL].state, shown[DRILL].due_at) == (AvailabilityState.CHECKED_OUT, due_at)
    assert (shown[SAW].state, shown[SAW].due_at) == (AvailabilityState.AVAILABLE, None)
    assert shown[RAKE].state is AvailabilityState.MAINTENANCE
    assert all(a.shelf_id == SHELF and a.changed_at == now for a in shown.values())

    async with library.write() as tx:
        row = await tx.open_checkout(DRILL)
        assert row is not None
        await tx.close_checkout(row.checkout_id, now, new_id(), KIOSK_A)
        returned = await tx.availability(DRILL, now, bump=True)
        unchanged = await tx.availability(SAW, now, bump=False)
    assert (returned.state, returned.due_at, returned.seq) == (AvailabilityState.AVAILABLE, None, 3)
    assert unchanged.seq == 1


async def test_reads_outside_a_write_see_only_what_it_committed(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    ada = await new_session(library, signer, ADA, KIOSK_A, now)
    async with library.write() as tx:
        await checkout(tx, DRILL, ADA, ada, now)
        # The admin API reads on other connections while the consumer writes.
        shown = {a.item_id: a.state for a in await library.all_availability(now)}
        assert shown[DRILL] is AvailabilityState.AVAILABLE
    shown = {a.item_id: a.state for a in await library.all_availability(now)}
    assert shown[DRILL] is AvailabilityState.CHECKED_OUT


async def test_availability_of_an_unknown_item_is_a_storage_error(
    library: AnyStore, clock: FakeClock
) -> None:
    async with library.write() as tx:
        with pytest.raises(StorageError):
            await tx.availability("NO-SUCH-ITEM", clock.now(), bump=False)


async def test_a_closed_store_refuses_work(store: AnyStore) -> None:
    await store.close()
    with pytest.raises(StorageError, match="not open"):
        await store.all_availability(datetime(2026, 1, 5, tzinfo=UTC))
    with pytest.raises(StorageError, match="not open"):
        async with store.write():
            pass
