"""Circulation decided by the ledger and the service on both stores: holds allocated at
return, renewals, bookings that shorten loans, policies, repair tickets, the hold sweep."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from broker import topics
from broker.messages import (
    Availability,
    AvailabilityState,
    ProblemReport,
    Reason,
    SecurityAlert,
)
from central.clock import FakeClock
from central.mqtt import Inbound
from central.services.circulation import Category, Circulation
from central.services.refusals import RefusedError
from central.tokens import TokenSigner
from tests.integration.storage.test_ledger import Desk
from tests.unit.central.support import (
    ADA,
    ADMIN,
    DRILL,
    GRACE,
    KIOSK_A,
    KIOSK_B,
    SAW,
    AnyStore,
    decide,
    execute,
    query,
)

THIRD = "M-3"


@dataclass
class Sent:
    """Stands in for the MQTT link: what the service published."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        self.messages.append((topic, payload))

    def ack(self, message: Inbound) -> None:
        raise AssertionError("the service acknowledges nothing")


@pytest.fixture
async def desk(library: AnyStore, signer: TokenSigner, clock: FakeClock) -> Desk:
    await library.add_member(THIRD, "Hedy", clock.now(), ADMIN)
    return Desk(library, signer, clock)


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def circ(desk: Desk, sent: Sent) -> Circulation:
    return Circulation(desk.store, desk.clock, sent, ADMIN)


async def hold_states(desk: Desk) -> list[tuple[str, str]]:
    rows = await query(desk.store, "SELECT member_id, state FROM holds ORDER BY id")
    return [(str(m), str(s)) for m, s in rows]


async def lend_drill_to_ada_with_grace_waiting(desk: Desk) -> None:
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    await desk.done()
    await desk.open_session(GRACE, KIOSK_B)
    assert (await desk.scan(desk.label(DRILL), KIOSK_B)).verdict.reason is Reason.HOLD_PLACED
    await desk.done(KIOSK_B)


async def test_a_return_allocates_the_item_to_the_member_waiting(desk: Desk) -> None:
    await lend_drill_to_ada_with_grace_waiting(desk)
    returned = await desk.scan(desk.label(DRILL), KIOSK_B)
    assert returned.verdict.reason is Reason.RETURNED_TO_HOLD
    assert returned.verdict.accepted
    assert [(a.item_id, a.state) for a in returned.changed] == [(DRILL, AvailabilityState.HELD)]
    assert await hold_states(desk) == [(GRACE, "ready")]
    # Someone else is told it is reserved; the holder checks it out.
    await desk.open_session(THIRD)
    assert (await desk.scan(desk.label(DRILL))).verdict.reason is Reason.RESERVED
    await desk.open_session(GRACE, KIOSK_B)
    await desk.check_out(DRILL, KIOSK_B)
    assert await desk.holders() == {DRILL: GRACE}
    assert await hold_states(desk) == [(GRACE, "fulfilled")]


async def test_an_expired_hold_passes_on_in_the_sweep_once(
    desk: Desk, circ: Circulation, sent: Sent
) -> None:
    await lend_drill_to_ada_with_grace_waiting(desk)
    await circ.place_hold(DRILL, THIRD)
    await desk.scan(desk.label(DRILL), KIOSK_B)  # returned: Grace's hold is ready
    desk.clock.advance(timedelta(days=10).total_seconds())
    assert await circ.sweep() == 0, "never told: the hold waits"
    await execute(
        desk.store, "UPDATE holds SET notified_at = ? WHERE state = 'ready'", desk.clock.now()
    )
    desk.clock.advance(timedelta(hours=23).total_seconds())
    assert await circ.sweep() == 0, "a day after the notice at least"
    desk.clock.advance(timedelta(hours=1).total_seconds())
    assert await circ.sweep() == 1
    assert await circ.sweep() == 0, "a second sweep finds nothing to do"
    assert await hold_states(desk) == [(GRACE, "expired"), (THIRD, "ready")]
    shown = Availability.model_validate_json(sent.messages[-1][1])
    assert (shown.item_id, shown.state) == (DRILL, AvailabilityState.HELD)


async def test_renewal_accepted_then_refused_at_the_limit_and_when_someone_waits(
    desk: Desk, circ: Circulation
) -> None:
    await desk.open_session(ADA)
    first = await desk.check_out(SAW)
    assert first.due_at is not None
    renewed = (await desk.scan(desk.label(SAW))).verdict
    assert renewed.reason is Reason.RENEWED
    assert renewed.due_at == first.due_at + timedelta(days=14)
    assert (await desk.scan(desk.label(SAW))).verdict.reason is Reason.RENEWED
    assert (await desk.scan(desk.label(SAW))).verdict.reason is Reason.RENEWAL_LIMIT
    await execute(desk.store, "UPDATE checkouts SET renewals = 0")
    await circ.place_hold(SAW, GRACE)
    refused = (await desk.scan(desk.label(SAW))).verdict
    assert (refused.reason, refused.accepted) == (Reason.HOLD_WAITING, False)


async def test_a_booking_shortens_a_loan_and_refuses_one_too_short(
    desk: Desk, circ: Circulation
) -> None:
    now = desk.clock.now()
    starts = now + timedelta(days=3)
    await circ.reserve(SAW, GRACE, starts, starts + timedelta(days=2))
    await desk.open_session(ADA)
    shortened = await desk.check_out(SAW)
    assert shortened.due_at == starts
    with pytest.raises(RefusedError):
        await circ.reserve(SAW, THIRD, starts + timedelta(days=1), starts + timedelta(days=4))
    await desk.done()
    desk.clock.advance(timedelta(days=2, hours=1).total_seconds())
    await desk.scan(desk.label(SAW))  # returned
    await desk.open_session(ADA)
    assert (await desk.scan(desk.label(SAW))).verdict.reason is Reason.RESERVED


async def test_policies_refuse_with_their_reasons(desk: Desk, circ: Circulation) -> None:
    await circ.put_category(Category(name="saws", loan_days=3, needs_training=True))
    await circ.file_item(SAW, "saws")
    await desk.open_session(ADA)
    assert (await desk.scan(desk.label(SAW))).verdict.reason is Reason.NEEDS_TRAINING
    await circ.record_training(ADA, "saws")
    await circ.publish_agreement("Bring it back clean.")
    await circ.put_category(Category(name="saws", loan_days=3, needs_agreement=True))
    assert (await desk.scan(desk.label(SAW))).verdict.reason is Reason.NEEDS_AGREEMENT
    await circ.accept_agreement(ADA)
    lent = await desk.check_out(SAW)
    assert lent.due_at == desk.clock.now() + timedelta(days=3)


async def test_a_long_overdue_loan_blocks_new_checkouts(desk: Desk) -> None:
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    desk.clock.advance(timedelta(days=7 + 15).total_seconds())
    await desk.open_session(ADA)
    assert (await desk.scan(desk.label(SAW))).verdict.reason is Reason.OVERDUE_BLOCK


async def test_a_reported_problem_opens_one_ticket_and_alerts_staff(
    desk: Desk, circ: Circulation, sent: Sent
) -> None:
    ticket = await circ.report_problem(DRILL, kiosk_id=KIOSK_A, member_id=ADA, event_id="E-1")
    again = await circ.report_problem(DRILL, kiosk_id=KIOSK_A, member_id=ADA, event_id="E-1")
    assert again.ticket_id == ticket.ticket_id
    assert (await desk.states())[DRILL] is AvailabilityState.MAINTENANCE
    alerts = [SecurityAlert.model_validate_json(p) for t, p in sent.messages if t == topics.ALERTS]
    assert [(a.kind, a.kiosk_id) for a in alerts] == [("item.problem", KIOSK_A)]
    await circ.place_hold(DRILL, GRACE)
    await circ.close_ticket(ticket.ticket_id)
    assert await circ.tickets() == []
    assert await hold_states(desk) == [(GRACE, "ready")], "back in service: to the waitlist"
    actions = [r[0] for r in await query(desk.store, "SELECT action FROM qr_audit_log")]
    assert {"ticket.open", "ticket.close", "hold.place", "hold.pass_on"} <= set(actions)


async def test_a_problem_pressed_after_a_return_opens_a_ticket_and_alerts(desk: Desk) -> None:
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    await desk.done()
    returned = await desk.scan(desk.label(DRILL))
    assert returned.verdict.reason is Reason.RETURNED
    press = ProblemReport(
        event_id="PRESS-0001",
        kiosk_id=KIOSK_A,
        scanned_at=desk.clock.now(),
        return_event_id=returned.verdict.event_id,
    )
    outcome = await decide(desk.store, desk.signer, press, desk.clock.now())
    assert (outcome.verdict.reason, outcome.verdict.accepted) == (Reason.PROBLEM_REPORTED, True)
    assert [(a.kind, a.kiosk_id, a.member_id) for a in outcome.alerts] == [
        ("item.problem", KIOSK_A, ADA)
    ]
    assert [(a.item_id, a.state) for a in outcome.changed] == [
        (DRILL, AvailabilityState.MAINTENANCE)
    ]
    again = await decide(desk.store, desk.signer, press, desk.clock.now())
    assert again.replayed
    rows = await query(desk.store, "SELECT item_id, kiosk_id, member_id FROM repair_tickets")
    assert [tuple(r) for r in rows] == [(DRILL, KIOSK_A, ADA)]


async def test_a_kit_waits_for_its_check_before_the_next_member_gets_it(
    desk: Desk, circ: Circulation
) -> None:
    await circ.put_category(Category(name="kits", inspection_required=True))
    await circ.file_item(DRILL, "kits")
    await lend_drill_to_ada_with_grace_waiting(desk)
    returned = await desk.scan(desk.label(DRILL), KIOSK_B)
    assert returned.verdict.reason is Reason.RETURNED
    assert (await desk.states())[DRILL] is AvailabilityState.MAINTENANCE
    (ticket,) = await circ.tickets()
    assert (ticket.note, ticket.member_id) == ("returned, awaiting check", ADA)
    assert await hold_states(desk) == [(GRACE, "waiting")]
    await circ.close_ticket(ticket.ticket_id)
    assert await hold_states(desk) == [(GRACE, "ready")]
    assert (await desk.states())[DRILL] is AvailabilityState.HELD


async def test_two_centrals_sweeping_at_once_pass_a_hold_on_once(
    desk: Desk, circ: Circulation, sent: Sent
) -> None:
    await lend_drill_to_ada_with_grace_waiting(desk)
    await circ.place_hold(DRILL, THIRD)
    await desk.scan(desk.label(DRILL), KIOSK_B)  # Grace's hold is ready
    await execute(
        desk.store, "UPDATE holds SET notified_at = ? WHERE state = 'ready'", desk.clock.now()
    )
    desk.clock.advance(timedelta(days=3).total_seconds())
    other = Circulation(desk.store, desk.clock, Sent(), "system")
    moved = await asyncio.gather(circ.sweep(), other.sweep(), circ.sweep())
    assert sorted(moved) == [0, 0, 1]
    assert await hold_states(desk) == [(GRACE, "expired"), (THIRD, "ready")]
    rows = await query(
        desk.store, "SELECT count(*) FROM qr_audit_log WHERE action = ?", "hold.pass_on"
    )
    assert [tuple(r) for r in rows] == [(1,)]
