"""Loans on both backends: overdue items, and items sent to maintenance while out or in."""

from __future__ import annotations

from datetime import timedelta

from broker.messages import Reason
from central.clock import FakeClock
from central.tokens import TokenSigner
from tests.unit.central.support import (
    ADA,
    ADMIN,
    DRILL,
    GRACE,
    KIOSK_A,
    KIOSK_B,
    SAW,
    AnyStore,
    code_scan,
    decide,
    issue_pass,
    query,
)


async def check_out(
    store: AnyStore, signer: TokenSigner, clock: FakeClock, member_id: str, *items: str
) -> None:
    now = clock.now()
    _, code = await issue_pass(store, signer, member_id, now)
    assert (await decide(store, signer, code_scan(KIOSK_A, code, now), now)).verdict.reason is (
        Reason.SESSION_OPENED
    )
    for item in items:
        scanned = code_scan(KIOSK_A, signer.label(item, 1), now)
        assert (await decide(store, signer, scanned, now)).verdict.reason is Reason.CHECKED_OUT


async def test_overdue_loans_are_those_past_due_most_overdue_first(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    await check_out(library, signer, clock, ADA, DRILL)  # due in 7 days
    clock.advance(timedelta(days=2).total_seconds())
    await check_out(library, signer, clock, GRACE, SAW)  # due in 14 days
    assert await library.overdue_loans(clock.now()) == []
    clock.advance(timedelta(days=6).total_seconds())  # drill 1 day late, saw not due
    assert [(o.member_id, o.item_id) for o in await library.overdue_loans(clock.now())] == [
        (ADA, DRILL)
    ]
    clock.advance(timedelta(days=10).total_seconds())
    overdue = await library.overdue_loans(clock.now())
    assert [(o.member_name, o.item_name) for o in overdue] == [
        ("Ada", "Cordless drill"),
        ("Grace", "Jigsaw"),
    ]
    assert overdue[0].due_at == overdue[0].checked_out_at + timedelta(days=7)
    # A return takes the item off the list.
    now = clock.now()
    back = await decide(library, signer, code_scan(KIOSK_B, signer.label(DRILL, 1), now), now)
    assert back.verdict.reason is Reason.RETURNED
    assert [o.item_id for o in await library.overdue_loans(clock.now())] == [SAW]


async def test_an_item_sent_to_maintenance_is_refused_and_comes_back_in(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    await check_out(library, signer, clock, ADA, DRILL)
    # Reported broken while out: it goes to maintenance, and its return still works.
    await library.set_item_state(DRILL, "maintenance", clock.now(), ADMIN)
    now = clock.now()
    back = await decide(library, signer, code_scan(KIOSK_B, signer.label(DRILL, 1), now), now)
    assert back.verdict.reason is Reason.RETURNED
    assert await query(library, "SELECT count(*) FROM checkouts WHERE returned_at IS NULL") == [
        (0,)
    ]
    # In maintenance it cannot go out again, even to a member with room and a session.
    _, code = await issue_pass(library, signer, GRACE, now)
    await decide(library, signer, code_scan(KIOSK_A, code, now), now)
    refused = await decide(library, signer, code_scan(KIOSK_A, signer.label(DRILL, 1), now), now)
    assert refused.verdict.reason is Reason.ITEM_UNAVAILABLE
    # Repaired, it can.
    await library.set_item_state(DRILL, "available", clock.now(), ADMIN)
    taken = await decide(library, signer, code_scan(KIOSK_A, signer.label(DRILL, 1), now), now)
    assert taken.verdict.reason is Reason.CHECKED_OUT
    states = [e.detail["state"] for e in await library.audit_tail(100) if e.action == "item.state"]
    assert states == ["maintenance", "available"]
