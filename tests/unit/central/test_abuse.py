"""Bad traffic counted in memory, and the per-kiosk queues drained in turn: no database."""

from __future__ import annotations

from datetime import timedelta

from central.abuse import NO_KIOSK, AbuseCounter, AbusePolicy, Drop
from central.fairqueue import FairQueue


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counter(policy: AbusePolicy) -> tuple[AbuseCounter, Ticks]:
    ticks = Ticks()
    return AbuseCounter(policy, ticks), ticks


def test_drops_are_aggregated_per_kiosk_per_window() -> None:
    abuse, ticks = counter(AbusePolicy(window_s=10.0))
    for _ in range(500):
        abuse.note("KIOSK-A1", "not_json")
    abuse.note("KIOSK-A1", Drop.SHED)
    abuse.note("KIOSK-B1", "bad_fields")
    assert abuse.due() == []  # the windows are still open
    ticks.now += 10
    rows = {row.kiosk: row.counts for row in abuse.due()}
    assert rows == {"KIOSK-A1": {"not_json": 500, "shed": 1}, "KIOSK-B1": {"bad_fields": 1}}
    assert abuse.due() == []  # written once


def test_a_kiosk_is_blocked_once_at_the_threshold_and_only_for_bad_messages() -> None:
    abuse, _ = counter(AbusePolicy(block_after=5))
    for _ in range(20):
        abuse.note("KIOSK-B1", Drop.SHED)  # an honest kiosk re-sending while we are slow
        abuse.note("KIOSK-B1", Drop.EMPTY)
    assert abuse.take_blocks() == []
    for _ in range(12):
        abuse.note("KIOSK-A1", "not_json")
    assert abuse.take_blocks() == ["KIOSK-A1"]
    assert abuse.take_blocks() == []
    assert abuse.blocked("KIOSK-A1")
    # Topics that name no kiosk are counted, never "blocked".
    for _ in range(12):
        abuse.note(NO_KIOSK, "bad_topic")
    assert abuse.take_blocks() == []


def test_the_block_is_told_the_moment_the_threshold_is_crossed_and_once() -> None:
    abuse, _ = counter(AbusePolicy(block_after=5))
    told: list[str] = []
    abuse.on_block = told.append
    for _ in range(4):
        abuse.note("KIOSK-A1", "not_json")
    assert told == []
    abuse.note("KIOSK-A1", "not_json")
    assert told == ["KIOSK-A1"]  # at the fifth message, not at some later flush
    for _ in range(100):
        abuse.note("KIOSK-A1", "not_json")
    assert told == ["KIOSK-A1"]


def test_only_a_budget_of_answers_per_window() -> None:
    abuse, ticks = counter(AbusePolicy(answers_per_window=3, window_s=10.0))
    answered = [abuse.note("KIOSK-A1", "not_json") for _ in range(10)]
    assert answered == [True] * 3 + [False] * 7
    ticks.now += 10
    abuse.due()
    assert abuse.note("KIOSK-A1", "not_json") is True


def test_a_held_kiosk_gets_its_budget_through_then_nothing_until_the_hold_ends() -> None:
    abuse, ticks = counter(AbusePolicy(answers_per_window=2, window_s=10.0))
    assert abuse.admit("KIOSK-A1")
    abuse.hold("KIOSK-A1", 30.0)
    assert [abuse.admit("KIOSK-A1") for _ in range(4)] == [True, True, False, False]
    ticks.now += 10
    abuse.due()  # a new window, a new budget
    assert abuse.admit("KIOSK-A1")
    ticks.now += 25
    assert not abuse.blocked("KIOSK-A1")
    assert all(abuse.admit("KIOSK-A1") for _ in range(10))
    abuse.hold("KIOSK-A1", 30.0)
    abuse.release("KIOSK-A1")
    assert not abuse.blocked("KIOSK-A1")


def test_ended_holds_are_forgotten() -> None:
    abuse, ticks = counter(AbusePolicy(block_for=timedelta(seconds=60)))
    for n in range(1000):
        abuse.hold(f"KIOSK-{n}", 5.0)
    ticks.now += 6
    abuse.due()
    assert abuse._blocked == {}  # the memory bound is the point
    assert not any(abuse.blocked(f"KIOSK-{n}") for n in range(1000))


def test_sources_take_turns_each_to_its_share_and_keep_their_order() -> None:
    queue: FairQueue[str] = FairQueue(backlog=1000, share=3)
    for n in range(10):
        assert queue.put("noisy", f"n{n}")
    assert queue.put("quiet", "q0")
    assert queue.put("other", "o0")
    assert queue.take(5) == ["n0", "q0", "o0", "n1", "n2"]
    # The noisy source used its share: it waits for the next batch.
    assert queue.take(100) == ["n3", "n4", "n5"]
    assert queue.take(100) == ["n6", "n7", "n8"]
    assert queue.take(100) == ["n9"]
    assert len(queue) == 0


def test_a_sources_backlog_is_bounded() -> None:
    queue: FairQueue[int] = FairQueue(backlog=3, share=10)
    assert [queue.put("A", n) for n in range(5)] == [True, True, True, False, False]
    assert queue.put("B", 0)
    assert len(queue) == 4
    assert queue.take(10) == [0, 0, 1, 2]


def test_a_dropped_source_loses_what_it_queued_and_the_others_keep_their_turns() -> None:
    queue: FairQueue[str] = FairQueue(backlog=1000, share=2)
    for n in range(5):
        queue.put("flooder", f"f{n}")
    queue.put("honest", "h0")
    queue.put("other", "o0")
    assert queue.drop("flooder") == ["f0", "f1", "f2", "f3", "f4"]
    assert queue.drop("flooder") == []
    assert len(queue) == 2
    assert queue.take(10) == ["h0", "o0"]
    # Back later, it queues again with one turn like anyone else.
    queue.put("flooder", "f5")
    queue.put("flooder", "f6")
    queue.put("flooder", "f7")
    queue.put("honest", "h1")
    assert queue.take(10) == ["f5", "h1", "f6"]
    assert queue.take(10) == ["f7"]
    assert len(queue) == 0
