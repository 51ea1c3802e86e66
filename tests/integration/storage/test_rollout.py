"""The rollout flag in the walk-up rules, on both stores: who may check out, what always works."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from broker.messages import Reason
from central.clock import FakeClock
from central.rollout import bucket
from central.storage.postgres import PostgresStore
from central.storage.rollout import FLAG, FlagMode, FlagRefusedError, FlagSetting
from central.storage.sqlite import SqliteStore
from central.tokens import TokenSigner
from tests.integration.storage.test_ledger import Desk
from tests.unit.central.support import ADA, DRILL, GRACE, KIOSK_A, KIOSK_B, SAW, AnyStore

WHO = "admin:ops"
ONE_MINUTE = timedelta(minutes=1)


@pytest.fixture
def desk(library: AnyStore, signer: TokenSigner, clock: FakeClock) -> Desk:
    return Desk(library, signer, clock)


async def set_flag(desk: Desk, setting: FlagSetting, reason: str = "test") -> None:
    await desk.store.set_flag(setting, reason, WHO, desk.clock.now())


async def test_a_fresh_database_has_checkout_on(desk: Desk) -> None:
    flag = await desk.store.get_flag()
    assert flag.setting.mode is FlagMode.ON
    assert not flag.tripped
    await desk.open_session(ADA)


async def test_off_refuses_a_pass_without_using_it_up(desk: Desk) -> None:
    await set_flag(desk, FlagSetting(FlagMode.OFF))
    code = await desk.pass_for(ADA)
    refused = (await desk.scan(code)).verdict
    assert (refused.reason, refused.accepted, refused.session_open) == (
        Reason.FEATURE_DISABLED,
        False,
        False,
    )
    await set_flag(desk, FlagSetting(FlagMode.ON))
    # The same pass still opens a session once checkout is back.
    assert (await desk.scan(code)).verdict.reason is Reason.SESSION_OPENED


async def test_off_stops_an_open_session_checking_out_but_returns_keep_working(
    desk: Desk,
) -> None:
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    await set_flag(desk, FlagSetting(FlagMode.OFF), "kill switch")
    refused = (await desk.scan(desk.label(SAW))).verdict
    assert refused.reason is Reason.FEATURE_DISABLED
    assert await desk.holders() == {DRILL: ADA}
    await desk.done()
    returned = (await desk.scan(desk.label(DRILL), KIOSK_B)).verdict
    assert returned.reason is Reason.RETURNED
    assert await desk.holders() == {}


async def test_off_lets_queued_and_late_returns_through(desk: Desk) -> None:
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    await desk.check_out(SAW)
    await desk.done()
    desk.clock.advance(600)  # the returns happen after the checkouts began
    # Someone else is mid-session at the kiosk whose outbox now sends Ada's returns.
    await desk.open_session(GRACE)
    await set_flag(desk, FlagSetting(FlagMode.OFF))
    queued = await desk.scan(desk.label(DRILL), queued=True)
    assert queued.verdict.reason is Reason.RETURNED
    late = await desk.scan(desk.label(SAW), scanned_at=desk.clock.now() - 5 * ONE_MINUTE)
    assert late.verdict.reason is Reason.RETURNED


async def test_allow_list_of_members_admits_only_them(desk: Desk) -> None:
    await set_flag(desk, FlagSetting(FlagMode.ALLOW_LIST, members=(ADA,)))
    await desk.open_session(ADA)
    await desk.check_out(DRILL)
    grace = (await desk.scan(await desk.pass_for(GRACE), KIOSK_B)).verdict
    assert grace.reason is Reason.FEATURE_DISABLED


async def test_allow_list_of_kiosks_admits_checkout_only_there(desk: Desk) -> None:
    await set_flag(desk, FlagSetting(FlagMode.ALLOW_LIST, kiosks=(KIOSK_A,)))
    at_b = (await desk.scan(await desk.pass_for(ADA), KIOSK_B)).verdict
    assert at_b.reason is Reason.FEATURE_DISABLED
    await desk.open_session(ADA, KIOSK_A)


async def test_allow_list_of_items_is_judged_per_item(desk: Desk) -> None:
    await set_flag(desk, FlagSetting(FlagMode.ALLOW_LIST, items=(DRILL,)))
    await desk.open_session(GRACE)
    assert (await desk.scan(desk.label(SAW))).verdict.reason is Reason.FEATURE_DISABLED
    await desk.check_out(DRILL)
    assert await desk.holders() == {DRILL: GRACE}


async def test_allow_lists_narrow_together(desk: Desk) -> None:
    # Members AND kiosks: Ada at kiosk A only.
    await set_flag(desk, FlagSetting(FlagMode.ALLOW_LIST, members=(ADA,), kiosks=(KIOSK_A,)))
    assert (await desk.scan(await desk.pass_for(ADA), KIOSK_B)).verdict.reason is (
        Reason.FEATURE_DISABLED
    )
    assert (await desk.scan(await desk.pass_for(GRACE), KIOSK_A)).verdict.reason is (
        Reason.FEATURE_DISABLED
    )
    await desk.open_session(ADA, KIOSK_A)


async def test_percentage_admits_members_by_their_stable_bucket(desk: Desk) -> None:
    # Ada's bucket is 53, Grace's 34: at 40 % Grace is in and Ada is out.
    assert (bucket(ADA), bucket(GRACE)) == (53, 34)
    await set_flag(desk, FlagSetting(FlagMode.PERCENTAGE, percent=40))
    assert (await desk.scan(await desk.pass_for(ADA))).verdict.reason is Reason.FEATURE_DISABLED
    await desk.open_session(GRACE, KIOSK_B)
    await desk.check_out(DRILL, KIOSK_B)
    # Growing the rollout keeps Grace in and lets Ada in.
    await set_flag(desk, FlagSetting(FlagMode.PERCENTAGE, percent=54))
    await desk.open_session(ADA)
    await desk.check_out(SAW, KIOSK_B)


async def test_every_change_is_audited_with_who_and_why(desk: Desk) -> None:
    await set_flag(desk, FlagSetting(FlagMode.PERCENTAGE, percent=10), "pilot week 1")
    await desk.store.set_flag(
        FlagSetting(FlagMode.OFF),
        "incident 42",
        "admin:eve",
        desk.clock.now(),
        action="rollout.kill_switch",
    )
    rows = [r for r in await desk.store.audit_tail(10) if r.action.startswith("rollout.")]
    assert [(r.action, r.actor, r.reason) for r in rows] == [
        ("rollout.flag_set", WHO, "pilot week 1"),
        ("rollout.kill_switch", "admin:eve", "incident 42"),
    ]
    assert rows[0].detail["flag"] == FLAG
    assert (rows[0].detail["mode"], rows[0].detail["percent"], rows[0].detail["was"]) == (
        "percentage",
        10,
        "on",
    )
    flag = await desk.store.get_flag()
    assert (flag.setting.mode, flag.reason, flag.changed_by) == (
        FlagMode.OFF,
        "incident 42",
        "admin:eve",
    )


async def test_a_tripped_breaker_holds_checkout_off_until_reset(desk: Desk) -> None:
    now = desk.clock.now()
    assert await desk.store.trip_breaker("3 security alerts in 10 min", {"alerts": 3}, now)
    assert not await desk.store.trip_breaker("again", {}, now), "trips once"
    assert (await desk.scan(await desk.pass_for(ADA))).verdict.reason is Reason.FEATURE_DISABLED
    with pytest.raises(FlagRefusedError, match="reset it first"):
        await set_flag(desk, FlagSetting(FlagMode.ON))
    # The kill switch is always allowed: off is off.
    await desk.store.set_flag(
        FlagSetting(FlagMode.OFF), "belt and braces", WHO, now, while_tripped=True
    )
    flag = await desk.store.reset_breaker("false alarm", WHO, now)
    assert (flag.tripped, flag.setting.mode, flag.breaker_reset_at) == (False, FlagMode.OFF, now)
    with pytest.raises(FlagRefusedError, match="not tripped"):
        await desk.store.reset_breaker("again", WHO, now)
    await set_flag(desk, FlagSetting(FlagMode.ON))
    await desk.open_session(ADA)
    actions = [(r.action, r.actor, r.reason) for r in await desk.store.audit_tail(20)]
    assert ("breaker.tripped", "system:breaker", "3 security alerts in 10 min") in actions
    assert ("breaker.reset", WHO, "false alarm") in actions
    assert sum(1 for a in actions if a[0] == "breaker.tripped") == 1


async def test_a_change_on_one_instance_holds_at_once_on_another(
    desk: Desk, tmp_path: Path
) -> None:
    # Two stores on one database, as two central instances: the flag is read inside each
    # decision's transaction, so the second instance's very next decision sees it.
    other: AnyStore
    if isinstance(desk.store, SqliteStore):
        other = await SqliteStore(tmp_path / "central.db").open()
    else:
        assert isinstance(desk.store, PostgresStore)
        other = await PostgresStore(desk.store._dsn).open()
    try:
        second = Desk(other, desk.signer, desk.clock)
        await set_flag(desk, FlagSetting(FlagMode.OFF))
        refused = (await second.scan(await second.pass_for(ADA))).verdict
        assert refused.reason is Reason.FEATURE_DISABLED
        await set_flag(desk, FlagSetting(FlagMode.ON))
        await second.open_session(ADA)
    finally:
        await other.close()
