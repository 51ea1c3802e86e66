"""A few seconds of the hostile-load benchmark: honest members stay served under attack."""

from __future__ import annotations

import pytest

from bench.hostile import Options, run
from bench.hostile_kiosks import Pace
from broker.messages import Reason
from testkit.consistency import violations


def short(*, attackers: bool, secure: bool = False) -> Options:
    """8 honest kiosks walking up every ~1.5 s for 6 s; a member waits 10 s for an answer."""
    return Options(
        kiosks=8,
        seconds=6,
        attackers=attackers,
        secure=secure,
        forge_rate=4,
        flood_max=300_000,
        pace=Pace(walkup_every_s=1.5, scan_gap_s=0.3),
        give_up_s=10,
    )


@pytest.mark.slow
@pytest.mark.parametrize("secure", [False, True], ids=["dev-broker", "fleet-broker"])
def test_without_attackers_every_honest_scan_is_answered_as_a_member_expects(secure: bool) -> None:
    # The same honest load alone: proves the walk-up script and its expectations are right,
    # so the attacked test below fails only through the attack; on the fleet broker each
    # kiosk and central log in with their own passwords, under the ACLs.
    result = run(short(attackers=False, secure=secure))
    assert result.walkups >= 8
    assert {"pass", "label", "done", "return"} <= {scan.step for scan in result.scans}
    assert result.unanswered == 0
    assert not result.wrong, result.wrong
    assert result.central_alive, result.ready_at_end
    assert result.breaker is not None
    assert not result.breaker.tripped
    assert violations(result.checks) == 0, result.checks


@pytest.mark.slow
def test_honest_members_are_served_while_one_kiosk_floods_and_another_forges() -> None:
    # Real Mosquitto, one real central on SQLite with its production defences (rate limits,
    # automatic block, breaker); 8 honest kiosks walking up every ~1.5 s for 6 s while one
    # kiosk floods garbage at the broker's full rate and another shows forged codes.
    result = run(short(attackers=True))
    # The attack really ran.
    assert result.flood is not None
    assert result.flood.total > 10_000, result.flood
    assert result.forger is not None
    assert sum(result.forger.sent.values()) >= 15
    # Every honest scan answered, and answered as a member should be.
    assert result.unanswered == 0, [s for s in result.scans if s.reason is None][:5]
    assert result.expired_passes == 0
    assert not result.wrong, result.wrong
    assert all(s.reason is s.expected for s in result.scans)
    # Members walked up and checked out, not just showed passes.
    assert {"pass", "label", "done"} <= {scan.step for scan in result.scans}
    assert result.walkups >= 8
    # The consumer is alive and checkout still on; nothing doubled.
    assert result.central_alive, result.ready_at_end
    assert result.breaker is not None
    assert not result.breaker.tripped, result.breaker.trip_reason
    assert result.checks, "no consistency check ran"
    assert violations(result.checks) == 0, result.checks
    # Neither attacker made a batch fail and pushed central off its batched path.
    assert result.fallbacks["batch_split"] == 0, result.fallbacks
    assert result.fallbacks["dead_letter"] == 0, result.fallbacks
    # The attackers got refusals, never an acceptance.
    assert not any(Reason(r).accepted for r in result.forger.verdicts)
