"""The walk-up rules, decided by central.ledger against both stores (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from broker.messages import AvailabilityState, Reason, Verdict
from central import ledger
from central.clock import FakeClock
from central.tokens import TokenSigner
from tests.unit.central.support import (
    ADA,
    DRILL,
    GRACE,
    KIOSK_A,
    KIOSK_B,
    LIMITS,
    RAKE,
    SAW,
    SESSION_TIMEOUT_S,
    AnyStore,
    code_scan,
    decide,
    execute,
    issue_pass,
    query,
    session_done,
)

TIMEOUT = timedelta(seconds=SESSION_TIMEOUT_S)


@dataclass
class Desk:
    """A kiosk as a test drives it: scan codes, press done, read the verdicts."""

    store: AnyStore
    signer: TokenSigner
    clock: FakeClock

    async def scan(
        self,
        code: str,
        kiosk_id: str = KIOSK_A,
        *,
        queued: bool = False,
        scanned_at: datetime | None = None,
    ) -> ledger.Outcome:
        event = code_scan(kiosk_id, code, scanned_at or self.clock.now(), queued=queued)
        return await decide(self.store, self.signer, event, self.clock.now())

    async def done(self, kiosk_id: str = KIOSK_A) -> ledger.Outcome:
        return await decide(
            self.store, self.signer, session_done(kiosk_id, self.clock.now()), self.clock.now()
        )

    async def pass_for(self, member_id: str, ttl: timedelta = timedelta(hours=1)) -> str:
        _, code = await issue_pass(self.store, self.signer, member_id, self.clock.now(), ttl)
        return code

    def label(self, item_id: str, version: int = 1) -> str:
        return self.signer.label(item_id, version)

    async def open_session(self, member_id: str, kiosk_id: str = KIOSK_A) -> Verdict:
        verdict = (await self.scan(await self.pass_for(member_id), kiosk_id)).verdict
        assert verdict.reason is Reason.SESSION_OPENED
        return verdict

    async def check_out(self, item_id: str, kiosk_id: str = KIOSK_A) -> Verdict:
        verdict = (await self.scan(self.label(item_id), kiosk_id)).verdict
        assert verdict.reason is Reason.CHECKED_OUT
        return verdict

    async def holders(self) -> dict[str, str]:
        rows = await query(
            self.store, "SELECT item_id, member_id FROM checkouts WHERE returned_at IS NULL"
        )
        return dict(rows)

    async def states(self) -> dict[str, AvailabilityState]:
        return {a.item_id: a.state for a in await self.store.all_availability(self.clock.now())}


@pytest.fixture
def desk(library: AnyStore, signer: TokenSigner, clock: FakeClock) -> Desk:
    return Desk(library, signer, clock)


# --- sessions ---------------------------------------------------------------------------


async def test_a_pass_opens_a_session(desk: Desk) -> None:
    outcome = await desk.scan(await desk.pass_for(ADA))
    verdict = outcome.verdict
    assert (verdict.reason, verdict.accepted, verdict.session_open) == (
        Reason.SESSION_OPENED,
        True,
        True,
    )
    assert verdict.member_name == "Ada"
    assert verdict.kiosk_id == KIOSK_A
    assert verdict.decided_at == desk.clock.now()
    assert verdict.session_expires_at == desk.clock.now() + TIMEOUT
    assert outcome.changed == []
    assert not outcome.replayed


async def test_a_reused_pass_is_already_used(desk: Desk) -> None:
    code = await desk.pass_for(ADA)
    await desk.scan(code)
    await desk.done()
    again = (await desk.scan(code, KIOSK_B)).verdict
    assert (again.reason, again.accepted, again.session_open) == (
        Reason.ALREADY_USED,
        False,
        False,
    )


async def test_a_refused_pass_leaves_the_open_session_alone(desk: Desk) -> None:
    used = await desk.pass_for(GRACE)
    await desk.scan(used, KIOSK_B)
    await desk.open_session(ADA)
    refused = (await desk.scan(used)).verdict
    assert (refused.reason, refused.session_open) == (Reason.ALREADY_USED, True)
    assert (await desk.check_out(DRILL)).member_name == "Ada"


async def test_a_suspended_member_cannot_open_a_session(desk: Desk) -> None:
    await execute(desk.store, "UPDATE members SET suspended = ? WHERE member_id = ?", True, ADA)
    verdict = (await desk.scan(await desk.pass_for(ADA))).verdict
    assert (verdict.reason, verdict.session_open) == (Reason.MEMBER_SUSPENDED, False)
    assert (await desk.scan(desk.label(DRILL))).verdict.reason is Reason.NO_SESSION


async def test_a_member_suspended_mid_session_cannot_check_out(desk: Desk) -> None:
    await desk.open_session(ADA)
    await execute(desk.store, "UPDATE members SET suspended = ? WHERE member_id = ?", True, ADA)
    verdict = (await desk.scan(desk.label(DRILL))).verdict
    assert verdict.reason is Reason.MEMBER_SUSPENDED
    assert await desk.holders() == {}


async def test_an_expired_pass_is_refused(desk: Desk) -> None:
    code = await desk.pass_for(ADA, ttl=timedelta(minutes=5))
    desk.clock.advance(300)
    verdict = (await desk.scan(code)).verdict
    assert (verdict.reason, verdict.session_open) == (Reason.EXPIRED, False)


async def test_an_invalidated_pass_is_revoked(desk: Desk) -> None:
    code = await desk.pass_for(ADA)
    await execute(desk.store, "UPDATE qr_codes SET invalidated_at = ?", desk.clock.now())
    assert (await desk.scan(code)).verdict.reason is Reason.REVOKED


async def test_a_genuine_pass_that_was_never_recorded_is_unknown(desk: Desk) -> None:
    code = desk.signer.member_pass("NEVER-ISSUED", ADA, desk.clock.now() + timedelta(hours=1))
    assert (await desk.scan(code)).verdict.reason is Reason.UNKNOWN_CODE
    ghost = desk.signer.member_pass("PASS-9", "M-404", desk.clock.now() + timedelta(hours=1))
    assert (await desk.scan(ghost)).verdict.reason is Reason.UNKNOWN_CODE


async def test_a_queued_pass_is_malformed_and_not_used_up(desk: Desk) -> None:
    code = await desk.pass_for(ADA)
    verdict = (await desk.scan(code, queued=True)).verdict
    assert (verdict.reason, verdict.session_open) == (Reason.MALFORMED, False)
    assert (await desk.scan(code)).verdict.reason is Reason.SESSION_OPENED


async def test_the_session_times_out_when_idle(desk: Desk) -> None:
    await desk.open_session(ADA)
    desk.clock.advance(SESSION_TIMEOUT_S - 1)
    # A refused scan is not activity: it neither ends nor extends the session.
    assert (await desk.scan("HELLO WORLD")).verdict.session_open
    desk.clock.advance(1)  # exactly at the deadline the session is gone
    verdict = (await desk.scan(desk.label(DRILL))).verdict
    assert (verdict.reason, verdict.session_open) == (Reason.NO_SESSION, False)
    assert await desk.holders() == {}


async def test_each_checkout_restarts_the_idle_timer(desk: Desk) -> None:
    await desk.open_session(ADA)
    desk.clock.advance(50)
    first = await desk.check_out(DRILL)
    assert first.session_expires_at == desk.clock.now() + TIMEOUT
    desk.clock.advance(50)  # 100 s after the pass: alive only thanks to the checkout
    second = await desk.check_out(SAW)
    assert second.session_expires_at == desk.clock.now() + TIMEOUT
    assert await desk.holders() == {DRILL: ADA, SAW: ADA}


async def test_the_next_pass_ends_the_current_session(desk: Desk) -> None:
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    opened = await desk.open_session(GRACE)
    assert opened.member_name == "Grace"
    assert (await desk.check_out(SAW)).member_name == "Grace"
    assert await desk.holders() == {DRILL: ADA, SAW: GRACE}
    open_rows = await query(desk.store, "SELECT member_id FROM sessions WHERE closed_at IS NULL")
    assert open_rows == [(GRACE,)]


async def test_done_closes_the_session(desk: Desk) -> None:
    await desk.open_session(ADA)
    outcome = await desk.done()
    verdict = outcome.verdict
    assert (verdict.reason, verdict.accepted, verdict.session_open) == (
        Reason.SESSION_CLOSED,
        True,
        False,
    )
    assert verdict.session_expires_at is None
    assert (await desk.scan(desk.label(DRILL))).verdict.reason is Reason.NO_SESSION
    # Done with nothing open is still a clean answer.
    assert (await desk.done(KIOSK_B)).verdict.reason is Reason.SESSION_CLOSED


async def test_sessions_belong_to_their_kiosk(desk: Desk) -> None:
    await desk.open_session(ADA, KIOSK_A)
    verdict = (await desk.scan(desk.label(DRILL), KIOSK_B)).verdict
    assert verdict.reason is Reason.NO_SESSION
    await desk.done(KIOSK_B)
    assert (await desk.check_out(DRILL, KIOSK_A)).member_name == "Ada"


# --- checkouts --------------------------------------------------------------------------


async def test_a_label_in_a_session_checks_the_item_out(desk: Desk) -> None:
    await desk.open_session(ADA)
    desk.clock.advance(5)
    outcome = await desk.scan(desk.label(DRILL))
    verdict = outcome.verdict
    now = desk.clock.now()
    assert (verdict.reason, verdict.accepted, verdict.session_open) == (
        Reason.CHECKED_OUT,
        True,
        True,
    )
    assert (verdict.item_id, verdict.item_name, verdict.member_name) == (
        DRILL,
        "Cordless drill",
        "Ada",
    )
    assert verdict.due_at == now + timedelta(days=7)  # the drill's own loan period
    [changed] = outcome.changed
    assert (changed.item_id, changed.state, changed.due_at) == (
        DRILL,
        AvailabilityState.CHECKED_OUT,
        now + timedelta(days=7),
    )
    assert changed.seq == 2  # 1 was the item's first availability, written when it was added
    assert await desk.holders() == {DRILL: ADA}
    assert (await desk.states())[DRILL] is AvailabilityState.CHECKED_OUT
    saw = await desk.check_out(SAW)
    assert saw.due_at == now + timedelta(days=14)


async def test_an_item_out_with_someone_else_takes_a_hold_once(desk: Desk) -> None:
    # Since circulation: the scan puts Ada on the waitlist (docs/circulation.md); a second
    # scan changes nothing and says the item is unavailable.
    await desk.open_session(GRACE, KIOSK_B)
    await desk.check_out(DRILL, KIOSK_B)
    await desk.open_session(ADA)
    outcome = await desk.scan(desk.label(DRILL))
    assert outcome.verdict.reason is Reason.HOLD_PLACED
    assert outcome.verdict.session_open
    assert outcome.changed == []
    assert await desk.holders() == {DRILL: GRACE}
    again = await desk.scan(desk.label(DRILL))
    assert again.verdict.reason is Reason.ITEM_UNAVAILABLE


async def test_an_item_in_maintenance_is_unavailable(desk: Desk) -> None:
    await execute(desk.store, "UPDATE items SET state = 'maintenance' WHERE item_id = ?", RAKE)
    await desk.open_session(ADA)
    assert (await desk.scan(desk.label(RAKE))).verdict.reason is Reason.ITEM_UNAVAILABLE
    assert await desk.holders() == {}


async def test_the_checkout_limit_is_enforced(desk: Desk) -> None:
    assert LIMITS[ADA] == 2
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    await desk.check_out(SAW)
    verdict = (await desk.scan(desk.label(RAKE))).verdict
    assert (verdict.reason, verdict.accepted, verdict.item_id) == (
        Reason.LIMIT_REACHED,
        False,
        RAKE,
    )
    assert await desk.holders() == {DRILL: ADA, SAW: ADA}
    # Returning one makes room again.
    await desk.done()
    assert (await desk.scan(desk.label(SAW))).verdict.reason is Reason.RETURNED
    await desk.open_session(ADA)
    assert (await desk.check_out(RAKE)).item_id == RAKE


async def test_an_old_label_version_is_revoked(desk: Desk) -> None:
    await execute(desk.store, "UPDATE items SET label_version = 2 WHERE item_id = ?", DRILL)
    await desk.open_session(ADA)
    verdict = (await desk.scan(desk.label(DRILL, version=1))).verdict
    assert (verdict.reason, verdict.item_id) == (Reason.REVOKED, DRILL)
    assert await desk.holders() == {}
    assert (await desk.scan(desk.label(DRILL, version=2))).verdict.reason is Reason.CHECKED_OUT


async def test_a_label_for_an_item_we_do_not_have_is_unknown(desk: Desk) -> None:
    await desk.open_session(ADA)
    assert (await desk.scan(desk.label("LADDER-01"))).verdict.reason is Reason.UNKNOWN_CODE


async def test_forged_garbage_and_enrolment_codes_change_nothing(desk: Desk) -> None:
    await desk.open_session(ADA)
    label = desk.label(DRILL)
    forged = label[:-1] + ("A" if label[-1] != "A" else "B")
    enrolment = desk.signer.enrolment("CLAIM-1", "SHELF-A", desk.clock.now() + TIMEOUT)
    for code, reason in (
        (forged, Reason.BAD_SIGNATURE),
        ("HELLO WORLD", Reason.UNKNOWN_CODE),
        (enrolment, Reason.UNKNOWN_CODE),
    ):
        verdict = (await desk.scan(code)).verdict
        assert (verdict.reason, verdict.accepted, verdict.session_open) == (reason, False, True)
    assert await desk.holders() == {}


async def test_an_event_the_consumer_could_not_verify_is_malformed(desk: Desk) -> None:
    event = code_scan(KIOSK_A, "", desk.clock.now())
    async with desk.store.write() as tx, desk.store.savepoint(tx):
        outcome = await ledger.apply(tx, event, None, desk.clock.now())
    assert outcome.verdict.reason is Reason.MALFORMED


# --- returns ----------------------------------------------------------------------------


async def test_a_label_without_a_session_returns_a_checked_out_item(desk: Desk) -> None:
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    await desk.done()
    desk.clock.advance(3600)
    outcome = await desk.scan(desk.label(DRILL), KIOSK_B)
    verdict = outcome.verdict
    assert (verdict.reason, verdict.accepted, verdict.session_open, verdict.item_id) == (
        Reason.RETURNED,
        True,
        False,
        DRILL,
    )
    [changed] = outcome.changed
    assert (changed.state, changed.due_at, changed.seq) == (AvailabilityState.AVAILABLE, None, 3)
    assert await desk.holders() == {}
    assert (await desk.states())[DRILL] is AvailabilityState.AVAILABLE
    returned = await query(desk.store, "SELECT returned_at, return_kiosk_id FROM checkouts")
    assert returned == [(desk.clock.now(), KIOSK_B)]


async def test_a_label_without_a_session_for_an_available_item_is_no_session(desk: Desk) -> None:
    outcome = await desk.scan(desk.label(DRILL))
    assert (outcome.verdict.reason, outcome.verdict.accepted) == (Reason.NO_SESSION, False)
    assert outcome.changed == []


async def test_a_queued_return_is_dated_when_it_was_scanned(desk: Desk) -> None:
    await desk.open_session(ADA)
    checked_out_at = desk.clock.now()
    await desk.check_out(DRILL)
    await desk.done()
    scanned_at = checked_out_at + timedelta(minutes=10)
    desk.clock.advance(3600)  # the kiosk was offline for an hour
    verdict = (await desk.scan(desk.label(DRILL), queued=True, scanned_at=scanned_at)).verdict
    assert verdict.reason is Reason.RETURNED
    assert verdict.decided_at == desk.clock.now()
    assert await query(desk.store, "SELECT returned_at FROM checkouts") == [(scanned_at,)]
    assert (await desk.states())[DRILL] is AvailabilityState.AVAILABLE


async def test_a_queued_return_is_dated_no_later_than_central_hears_of_it(desk: Desk) -> None:
    await desk.open_session(ADA)
    await desk.check_out(SAW)
    await desk.done()
    desk.clock.advance(600)
    # A kiosk clock running (a little) fast cannot date a return after central hears of it.
    late = desk.clock.now() + timedelta(minutes=4)
    assert (await desk.scan(desk.label(SAW), queued=True, scanned_at=late)).verdict.accepted
    assert await query(desk.store, "SELECT returned_at FROM checkouts") == [(desk.clock.now(),)]


@pytest.mark.parametrize("queued", [True, False])
async def test_a_return_stamped_before_the_checkout_began_never_closes_it(
    desk: Desk, queued: bool
) -> None:
    await desk.open_session(ADA)
    checked_out_at = desk.clock.now()
    await desk.check_out(DRILL)
    await desk.done()
    desk.clock.advance(600)
    # A return queued (or re-sent late) from before this loan began belongs to an earlier
    # loan: it must not end Ada's, let alone record it as lasting no time at all.
    before = checked_out_at - timedelta(minutes=5)
    outcome = await desk.scan(desk.label(DRILL), queued=queued, scanned_at=before)
    assert (outcome.verdict.reason, outcome.verdict.accepted) == (Reason.NOT_CHECKED_OUT, False)
    assert outcome.changed == []
    assert await desk.holders() == {DRILL: ADA}


async def test_a_live_return_is_dated_by_centrals_clock_whatever_the_kiosks_says(
    desk: Desk,
) -> None:
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    await desk.done()
    desk.clock.advance(30)
    # The kiosk's clock is 50 s slow: its stamp predates the checkout, but the scan is live
    # (not queued, not late), so it is the return it looks like, dated now.
    skewed = desk.clock.now() - timedelta(seconds=50)
    verdict = (await desk.scan(desk.label(DRILL), scanned_at=skewed)).verdict
    assert verdict.reason is Reason.RETURNED
    assert await query(desk.store, "SELECT returned_at FROM checkouts") == [(desk.clock.now(),)]


async def test_a_return_at_another_shelfs_kiosk_is_refused_unless_it_is_a_return_point(
    desk: Desk,
) -> None:
    now = desk.clock.now()
    await desk.store.add_shelf("SHELF-G", "Garden", now, "admin:test")
    await desk.store.add_kiosk("KIOSK-G", "SHELF-G", now, "admin:test")
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    await desk.done()
    # Someone with a photo of the drill's label, at a kiosk of another shelf.
    elsewhere = (await desk.scan(desk.label(DRILL), "KIOSK-G")).verdict
    assert (elsewhere.reason, elsewhere.accepted) == (Reason.WRONG_SHELF, False)
    assert await desk.holders() == {DRILL: ADA}
    # The front desk's kiosk is a return point: it takes any shelf's items.
    await execute(
        desk.store, "UPDATE kiosks SET return_point = ? WHERE kiosk_id = ?", True, "KIOSK-G"
    )
    assert (await desk.scan(desk.label(DRILL), "KIOSK-G")).verdict.reason is Reason.RETURNED


async def test_a_quick_return_is_marked_in_the_audit_for_staff(desk: Desk) -> None:
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    await desk.check_out(SAW)
    await desk.done()
    desk.clock.advance(60)
    await desk.scan(desk.label(DRILL))
    desk.clock.advance(3600)
    await desk.scan(desk.label(SAW))
    rows = await query(
        desk.store,
        "SELECT item_id, detail FROM qr_audit_log WHERE reason = 'RETURNED' ORDER BY seq",
    )
    details = {item: json.loads(detail) for item, detail in rows}
    assert details[DRILL]["loan_s"] == 60
    assert details[DRILL]["quick_return"] is True
    assert details[SAW]["loan_s"] == 3660
    assert "quick_return" not in details[SAW]


async def test_a_queued_return_ignores_an_open_session(desk: Desk) -> None:
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    # Same kiosk, session still open: the queued scan was a return when it was taken.
    verdict = (await desk.scan(desk.label(DRILL), queued=True)).verdict
    assert verdict.reason is Reason.RETURNED
    assert await desk.holders() == {}


async def test_a_queued_label_of_an_available_item_is_not_checked_out(desk: Desk) -> None:
    outcome = await desk.scan(desk.label(DRILL), queued=True)
    assert (outcome.verdict.reason, outcome.verdict.accepted) == (Reason.NOT_CHECKED_OUT, False)
    assert outcome.changed == []


# --- kiosks -----------------------------------------------------------------------------


async def test_an_unknown_kiosk_is_blocked(desk: Desk) -> None:
    code = await desk.pass_for(ADA)
    assert (await desk.scan(code, "KIOSK-Z")).verdict.reason is Reason.KIOSK_BLOCKED
    assert (await desk.done("KIOSK-Z")).verdict.reason is Reason.KIOSK_BLOCKED
    # The refusal did not use the pass up.
    assert (await desk.scan(code)).verdict.reason is Reason.SESSION_OPENED


async def test_a_retired_kiosk_is_blocked(desk: Desk) -> None:
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    await desk.done()
    await execute(desk.store, "UPDATE kiosks SET retired = ? WHERE kiosk_id = ?", True, KIOSK_A)
    verdict = (await desk.scan(desk.label(DRILL))).verdict
    assert (verdict.reason, verdict.accepted) == (Reason.KIOSK_BLOCKED, False)
    assert await desk.holders() == {DRILL: ADA}


async def test_a_blocked_kiosk_is_refused_until_the_block_ends(desk: Desk) -> None:
    until = desk.clock.now() + timedelta(minutes=10)
    await execute(
        desk.store, "UPDATE kiosks SET blocked_until = ? WHERE kiosk_id = ?", until, KIOSK_A
    )
    code = await desk.pass_for(ADA)
    assert (await desk.scan(code)).verdict.reason is Reason.KIOSK_BLOCKED
    assert (await desk.scan(code, KIOSK_B)).verdict.reason is Reason.SESSION_OPENED
    desk.clock.advance(600)
    await desk.open_session(ADA)


# --- at most once -----------------------------------------------------------------------


async def test_a_redelivered_event_gets_the_same_verdict_and_no_second_effect(desk: Desk) -> None:
    await desk.open_session(ADA)
    event = code_scan(KIOSK_A, desk.label(DRILL), desk.clock.now())
    first = await decide(desk.store, desk.signer, event, desk.clock.now())
    desk.clock.advance(5)
    again = await decide(desk.store, desk.signer, event, desk.clock.now())
    assert first.verdict.reason is Reason.CHECKED_OUT
    assert not first.replayed
    assert again.replayed
    assert again.verdict == first.verdict
    assert again.changed == []
    assert await query(desk.store, "SELECT count(*) FROM checkouts") == [(1,)]
    decided = await query(
        desk.store, "SELECT count(*) FROM scan_events WHERE event_id = ?", event.event_id
    )
    assert decided == [(1,)]
    audit = await query(
        desk.store, "SELECT count(*) FROM qr_audit_log WHERE event_id = ?", event.event_id
    )
    assert audit == [(1,)]


async def test_a_redelivered_return_does_not_return_a_later_checkout(desk: Desk) -> None:
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    await desk.done()
    give_back = code_scan(KIOSK_A, desk.label(DRILL), desk.clock.now())
    assert (await decide(desk.store, desk.signer, give_back, desk.clock.now())).verdict.accepted
    await desk.open_session(GRACE)
    await desk.check_out(DRILL)
    await desk.done()
    replay = await decide(desk.store, desk.signer, give_back, desk.clock.now())
    assert (replay.replayed, replay.verdict.reason) == (True, Reason.RETURNED)
    assert await desk.holders() == {DRILL: GRACE}


async def test_every_verdict_is_audited_without_the_code_in_clear(desk: Desk) -> None:
    code = await desk.pass_for(ADA)
    await desk.scan(code)
    await desk.scan(desk.label(DRILL))
    await desk.done()
    rows = await query(
        desk.store,
        "SELECT actor, action, reason, member_id, detail FROM qr_audit_log"
        " WHERE action LIKE 'scan.%' ORDER BY seq",
    )
    assert [row[:4] for row in rows] == [
        (f"kiosk:{KIOSK_A}", "scan.code", "SESSION_OPENED", ADA),
        (f"kiosk:{KIOSK_A}", "scan.code", "CHECKED_OUT", ADA),
        (f"kiosk:{KIOSK_A}", "scan.done", "SESSION_CLOSED", None),
    ]
    dumped = str(await query(desk.store, "SELECT * FROM qr_audit_log")) + str(
        await query(desk.store, "SELECT * FROM scan_events")
    )
    assert code not in dumped
    assert code.split(".")[-1] not in dumped  # not even the MAC


async def test_a_scan_from_the_future_is_malformed(desk: Desk) -> None:
    await desk.open_session(ADA)
    future = desk.clock.now() + timedelta(minutes=6)
    verdict = (await desk.scan(desk.label(DRILL), scanned_at=future)).verdict
    assert verdict.reason is Reason.MALFORMED
    assert await desk.holders() == {}


async def test_a_late_pass_is_refused_but_stays_usable(desk: Desk) -> None:
    code = await desk.pass_for(ADA)
    two_minutes_ago = desk.clock.now() - timedelta(minutes=2)
    late = (await desk.scan(code, scanned_at=two_minutes_ago)).verdict
    assert (late.reason, late.session_open) == (Reason.EXPIRED, False)
    # The member walked away without a session; the pass was not spent.
    assert (await desk.scan(code)).verdict.reason is Reason.SESSION_OPENED


async def test_a_late_label_never_checks_out_into_a_newer_session(desk: Desk) -> None:
    two_minutes_ago = desk.clock.now() - timedelta(minutes=2)
    await desk.open_session(GRACE)
    # A scan from before this session (re-sent from an outbox) is not Grace's checkout.
    late = (await desk.scan(desk.label(DRILL), scanned_at=two_minutes_ago)).verdict
    assert late.reason is Reason.NOT_CHECKED_OUT
    assert await desk.holders() == {}


async def test_a_late_return_is_applied_and_dated_when_it_happened(desk: Desk) -> None:
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    await desk.done()
    desk.clock.advance(3600)
    scanned_at = desk.clock.now() - timedelta(minutes=30)
    verdict = (await desk.scan(desk.label(DRILL), scanned_at=scanned_at)).verdict
    assert verdict.reason is Reason.RETURNED
    assert await query(desk.store, "SELECT returned_at FROM checkouts") == [(scanned_at,)]


async def test_a_late_done_does_not_end_a_newer_session(desk: Desk) -> None:
    await desk.open_session(ADA)
    stale = session_done(KIOSK_A, desk.clock.now() - timedelta(minutes=2))
    verdict = (await decide(desk.store, desk.signer, stale, desk.clock.now())).verdict
    assert (verdict.reason, verdict.session_open) == (Reason.SESSION_CLOSED, True)
    assert (await desk.scan(desk.label(DRILL))).verdict.reason is Reason.CHECKED_OUT
