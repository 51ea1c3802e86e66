"""The database's own guards, on both backends: they refuse on their own, rules bypassed.

Each invariant the ledger keeps is also a constraint, so a logic slip or a race the locks
missed is refused by the database, and the store reports the refusal as a conflict (the
consumer undoes the event and decides it again against the winner's rows).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from broker.messages import Reason, Verdict
from central.clock import FakeClock
from central.errors import StorageError
from central.storage.base import AuditEntry, Tx
from central.storage.postgres import PostgresStore
from central.tokens import TokenSigner
from tests.integration.storage.support import DB_ERRORS, INTEGRITY_ERRORS, empty_postgres
from tests.unit.central.support import (
    ADA,
    DRILL,
    GRACE,
    KIOSK_A,
    KIOSK_B,
    AnyStore,
    execute,
    issue_pass,
    query,
)

HOUR = timedelta(hours=1)


async def refusal(store: AnyStore, attempt: Callable[[Tx], Awaitable[object]]) -> BaseException:
    """Run ``attempt`` in a write of its own; what the database refused it with."""
    with pytest.raises(INTEGRITY_ERRORS) as caught:
        async with store.write() as tx:
            await attempt(tx)
    refused: BaseException = caught.value
    return refused


def verdict(event_id: str, now: datetime) -> Verdict:
    return Verdict(
        event_id=event_id,
        kiosk_id=KIOSK_A,
        reason=Reason.NO_SESSION,
        accepted=False,
        session_open=False,
        decided_at=now,
    )


async def test_a_second_open_checkout_of_an_item_is_refused(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    ada_pass, _ = await issue_pass(library, signer, ADA, now)
    grace_pass, _ = await issue_pass(library, signer, GRACE, now)
    async with library.write() as tx:
        ada = await tx.start_session(KIOSK_A, ADA, ada_pass, now, now + HOUR)
        grace = await tx.start_session(KIOSK_B, GRACE, grace_pass, now, now + HOUR)
        await tx.insert_checkout(DRILL, ADA, ada.session_id, KIOSK_A, "E-1", now, now + HOUR)

    exc = await refusal(
        library,
        lambda tx: tx.insert_checkout(
            DRILL, GRACE, grace.session_id, KIOSK_B, "E-2", now, now + HOUR
        ),
    )
    assert library.is_conflict(exc)
    assert await query(library, "SELECT item_id, member_id, event_id FROM checkouts") == [
        (DRILL, ADA, "E-1")
    ]


async def test_a_second_session_for_one_pass_is_refused(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    pass_id, _ = await issue_pass(library, signer, ADA, now)
    async with library.write() as tx:
        await tx.start_session(KIOSK_A, ADA, pass_id, now, now + HOUR)
        await tx.close_sessions(KIOSK_A, now)
    # Another kiosk and no session open anywhere: only the pass's uniqueness refuses it.
    exc = await refusal(
        library, lambda tx: tx.start_session(KIOSK_B, ADA, pass_id, now, now + HOUR)
    )
    assert library.is_conflict(exc)
    assert await query(library, "SELECT kiosk_id, pass_id FROM sessions") == [(KIOSK_A, pass_id)]


async def test_a_second_open_session_at_one_kiosk_is_refused(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    first, _ = await issue_pass(library, signer, ADA, now)
    second, _ = await issue_pass(library, signer, GRACE, now)
    async with library.write() as tx:
        await tx.start_session(KIOSK_A, ADA, first, now, now + HOUR)

    exc = await refusal(
        library, lambda tx: tx.start_session(KIOSK_A, GRACE, second, now, now + HOUR)
    )
    assert library.is_conflict(exc)
    assert await query(library, "SELECT member_id FROM sessions WHERE closed_at IS NULL") == [
        (ADA,)
    ]
    # An expired but unclosed session still counts as open: only closing frees the kiosk.
    later = now + 2 * HOUR
    exc = await refusal(
        library, lambda tx: tx.start_session(KIOSK_A, GRACE, second, later, later + HOUR)
    )
    assert library.is_conflict(exc)


async def test_a_second_verdict_for_one_event_is_refused(
    library: AnyStore, clock: FakeClock
) -> None:
    now = clock.now()
    async with library.write() as tx:
        await tx.save_verdict(verdict("evt-00000001", now), None, now)

    exc = await refusal(
        library, lambda tx: tx.save_verdict(verdict("evt-00000001", now), "other", now)
    )
    assert library.is_conflict(exc)
    assert await query(library, "SELECT event_id, code_hash FROM scan_events") == [
        ("evt-00000001", None)
    ]


async def test_faults_that_are_not_refusals_are_not_conflicts(library: AnyStore) -> None:
    assert not library.is_conflict(RuntimeError("fault"))
    assert not library.is_conflict(StorageError("checkout 1 was not open"))
    with pytest.raises(DB_ERRORS) as caught:
        await execute(library, "SELECT * FROM no_such_table")
    assert not library.is_conflict(caught.value)


# --- the audit log ----------------------------------------------------------------------


async def test_the_audit_log_refuses_update_and_delete(library: AnyStore) -> None:
    before = await query(library, "SELECT * FROM qr_audit_log ORDER BY seq")
    assert before, "seeding the library is audited"
    with pytest.raises(DB_ERRORS, match="append-only"):
        await execute(library, "UPDATE qr_audit_log SET actor = 'admin:mallory'")
    with pytest.raises(DB_ERRORS, match="append-only"):
        await execute(
            library, "DELETE FROM qr_audit_log WHERE seq = (SELECT max(seq) FROM qr_audit_log)"
        )
    # SQLite has no TRUNCATE; an unqualified DELETE is its spelling of it.
    with pytest.raises(DB_ERRORS, match="append-only"):
        await execute(library, "DELETE FROM qr_audit_log")
    assert await query(library, "SELECT * FROM qr_audit_log ORDER BY seq") == before
    # Appending still works.
    at = datetime(2026, 1, 6, tzinfo=UTC)
    async with library.write() as tx:
        await tx.audit(AuditEntry(at, "system", "test.append", detail={"n": 1}))
    tail = await library.audit_tail(1)
    assert tail == [AuditEntry(at, "system", "test.append", detail={"n": 1})]


@pytest.mark.parametrize("backend", ["postgres"])  # SQLite has no TRUNCATE statement
async def test_the_audit_log_refuses_truncate(library: AnyStore) -> None:
    before = await query(library, "SELECT count(*) FROM qr_audit_log")
    for statement in (
        "TRUNCATE qr_audit_log",
        "TRUNCATE qr_audit_log RESTART IDENTITY CASCADE",
        "TRUNCATE scan_events, qr_audit_log",
    ):
        with pytest.raises(DB_ERRORS, match="append-only"):
            await execute(library, statement)
    assert await query(library, "SELECT count(*) FROM qr_audit_log") == before
    # The tests' own reset lifts the guard for its transaction only.
    assert isinstance(library, PostgresStore)
    await empty_postgres(library)
    assert await query(library, "SELECT count(*) FROM qr_audit_log") == [(0,)]
    with pytest.raises(DB_ERRORS, match="append-only"):
        await execute(library, "TRUNCATE qr_audit_log")
