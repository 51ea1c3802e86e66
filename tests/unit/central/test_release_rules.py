"""The staged-rollout rules: exact cohorts, one step per kiosk, AWS IoT Jobs-style halting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from broker.messages import KioskState, KioskStatus, UpdateProgress, UpdateRefusal, UpdateState
from central import releases
from central.releases import Decision, KioskView, Step, Tally

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
RESEND = timedelta(seconds=30)
FLEET = [f"KIOSK-{n}" for n in range(1, 101)]


def status(version: str = "0.1.0", *, online: bool = True, update: UpdateProgress | None = None):  # type: ignore[no-untyped-def]
    return KioskStatus(
        kiosk_id="KIOSK-1",
        state=KioskState.ONLINE if online else KioskState.OFFLINE,
        software_version=version,
        config_version=1,
        at=NOW,
        update=update,
    )


def test_a_percentage_takes_exactly_that_share_rounded_up() -> None:
    assert len(releases.cohort(1, FLEET[:6], percent=50, allow=())) == 3
    assert len(releases.cohort(1, FLEET, percent=10, allow=())) == 10
    assert len(releases.cohort(1, FLEET[:6], percent=10, allow=())) == 1  # a canary, not none
    assert releases.cohort(1, FLEET, percent=0, allow=()) == frozenset()


def test_raising_the_percentage_only_adds_kiosks_and_a_new_rollout_reshuffles() -> None:
    ten = releases.cohort(7, FLEET, percent=10, allow=())
    fifty = releases.cohort(7, FLEET, percent=50, allow=())
    assert ten < fifty
    assert releases.cohort(8, FLEET, percent=10, allow=()) != ten


def test_the_allow_list_comes_first_and_unknown_kiosks_are_ignored() -> None:
    chosen = releases.cohort(1, FLEET[:6], percent=0, allow=("KIOSK-2", "KIOSK-99X"))
    assert chosen == frozenset({"KIOSK-2"})
    both = releases.cohort(1, FLEET[:6], percent=20, allow=("KIOSK-2",))
    assert "KIOSK-2" in both
    assert len(both) == 2  # the allow-list plus 20 % of the other five, rounded up


def test_an_online_kiosk_not_yet_on_the_version_is_offered_and_offered_again() -> None:
    fresh = KioskView(status(), None, None)
    assert releases.decide(1, "0.2.0", fresh, NOW, RESEND) == Decision(Step.OFFER)
    recent = KioskView(status(), releases.OFFERED, NOW - timedelta(seconds=5))
    assert releases.decide(1, "0.2.0", recent, NOW, RESEND) == Decision(Step.WAIT)
    stale = KioskView(status(), releases.OFFERED, NOW - RESEND)
    assert releases.decide(1, "0.2.0", stale, NOW, RESEND) == Decision(Step.OFFER)


def test_an_offline_kiosk_waits_and_its_reports_are_recorded() -> None:
    away = KioskView(status(online=False), releases.OFFERED, NOW - RESEND * 10)
    assert releases.decide(1, "0.2.0", away, NOW, RESEND) == Decision(Step.WAIT)
    back = UpdateProgress(
        rollout_id=1,
        version="0.2.0",
        state=UpdateState.ROLLED_BACK,
        reason=UpdateRefusal.CRASH_LOOP,
    )
    view = KioskView(status(update=back), releases.OFFERED, NOW)
    assert releases.decide(1, "0.2.0", view, NOW, RESEND) == Decision(
        Step.RECORD, "rolled_back", "CRASH_LOOP"
    )
    recorded = KioskView(status(update=back), "rolled_back", NOW)
    assert releases.decide(1, "0.2.0", recorded, NOW, RESEND).step is Step.WAIT


def test_a_new_version_on_trial_is_not_yet_healthy() -> None:
    trial = UpdateProgress(rollout_id=1, version="0.2.0", state=UpdateState.INSTALLED)
    view = KioskView(status("0.2.0", update=trial), releases.OFFERED, NOW)
    assert releases.decide(1, "0.2.0", view, NOW, RESEND) == Decision(Step.RECORD, "installed")
    confirmed = UpdateProgress(rollout_id=1, version="0.2.0", state=UpdateState.HEALTHY)
    view = KioskView(status("0.2.0", update=confirmed), "installed", NOW)
    assert releases.decide(1, "0.2.0", view, NOW, RESEND) == Decision(Step.RECORD, "healthy")


def test_a_report_about_another_rollout_is_not_this_ones() -> None:
    other = UpdateProgress(
        rollout_id=1, version="0.2.0", state=UpdateState.REFUSED, reason=UpdateRefusal.BAD_HASH
    )
    view = KioskView(status(update=other), None, None)
    assert releases.decide(2, "0.2.0", view, NOW, RESEND) == Decision(Step.OFFER)


def test_halting_waits_for_the_minimum_then_compares_failures_with_the_threshold() -> None:
    def halts(healthy: int, failed: int, percent: int, minimum: int) -> bool:
        tally = Tally(cohort=10, healthy=healthy, failed=failed)
        return releases.should_halt(tally, abort_percent=percent, abort_min=minimum)

    assert not halts(0, 0, 20, 1)
    assert halts(0, 1, 20, 1)
    assert not halts(0, 1, 20, 3)  # too few finished to judge
    assert halts(2, 1, 20, 3)  # 1 of 3 = 33 % >= 20 %
    assert not halts(9, 1, 20, 3)  # 1 of 10 = 10 %


def test_done_when_every_cohort_kiosk_is_healthy() -> None:
    assert releases.is_done(releases.tally(2, ["healthy", "healthy"]))
    assert not releases.is_done(releases.tally(3, ["healthy", "healthy", "offered"]))
    assert not releases.is_done(releases.tally(0, []))
