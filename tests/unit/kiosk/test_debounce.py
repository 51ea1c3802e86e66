"""Debounce: a code held in front of the camera is one scan, not thirty a second."""

from __future__ import annotations

from kiosk.debounce import Debouncer

FPS = 30
GAP = 1.5
LABEL = "CS1.L.K1.DRILL-01.1.AAAAAAAAAAAAAAAAAAAAAAAA"
OTHER = "CS1.L.K1.SAW-01.1.BBBBBBBBBBBBBBBBBBBBBBBB"


def hold(
    debouncer: Debouncer, codes: list[str], start: float, seconds: float, *, miss_every: int = 0
) -> tuple[list[str], float]:
    """Feed ``seconds`` of 30 fps frames showing ``codes``; every ``miss_every``-th frame
    the decoder misses them. The fresh codes, and the time of the next frame."""
    fresh: list[str] = []
    frames = round(seconds * FPS)
    for i in range(frames):
        now = start + i / FPS
        seen = [] if miss_every and i % miss_every == miss_every - 1 else codes
        fresh += debouncer.fresh(seen, now)
    return fresh, start + frames / FPS


def test_a_code_held_in_view_for_seconds_counts_once() -> None:
    debouncer = Debouncer(GAP)

    fresh, _ = hold(debouncer, [LABEL], 0.0, 10.0, miss_every=7)

    assert fresh == [LABEL]


def test_a_short_run_of_missed_frames_is_not_a_new_presentation() -> None:
    debouncer = Debouncer(GAP)
    fresh, now = hold(debouncer, [LABEL], 0.0, 2.0)
    # The decoder loses the code for a second (glare, a shaky hand) within the gap.
    _, now = hold(debouncer, [], now, 1.0)
    more, _ = hold(debouncer, [LABEL], now, 2.0)

    assert fresh == [LABEL]
    assert more == []


def test_a_code_shown_again_after_leaving_view_longer_than_the_gap_counts_again() -> None:
    debouncer = Debouncer(GAP)
    first, now = hold(debouncer, [LABEL], 0.0, 1.0, miss_every=5)
    _, now = hold(debouncer, [], now, GAP + 0.2)

    again, _ = hold(debouncer, [LABEL], now, 1.0, miss_every=5)

    assert first == [LABEL]
    assert again == [LABEL]


def test_the_same_code_re_presented_within_the_gap_does_not_count() -> None:
    debouncer = Debouncer(GAP)
    assert debouncer.fresh([LABEL], 10.0) == [LABEL]

    assert debouncer.fresh([], 10.5) == []
    assert debouncer.fresh([LABEL], 10.0 + GAP - 0.1) == []  # unseen for 1.4 s


def test_the_gap_is_measured_from_when_the_code_was_last_seen() -> None:
    debouncer = Debouncer(GAP)
    debouncer.fresh([LABEL], 0.0)
    debouncer.fresh([LABEL], 5.0)  # still held five seconds later

    assert debouncer.fresh([LABEL], 6.4) == []  # 1.4 s after it was last seen
    assert debouncer.fresh([LABEL], 8.0) == [LABEL]  # 1.6 s after it was last seen


def test_two_codes_in_one_frame_both_count() -> None:
    debouncer = Debouncer(GAP)

    fresh, _ = hold(debouncer, [LABEL, OTHER], 0.0, 3.0, miss_every=9)

    assert fresh == [LABEL, OTHER]


def test_a_second_code_joining_one_already_in_view_counts_alone() -> None:
    debouncer = Debouncer(GAP)
    first, now = hold(debouncer, [LABEL], 0.0, 1.0)

    joined, _ = hold(debouncer, [LABEL, OTHER], now, 1.0)

    assert first == [LABEL]
    assert joined == [OTHER]


def test_a_code_read_twice_in_one_frame_counts_once() -> None:
    debouncer = Debouncer(GAP)

    assert debouncer.fresh([LABEL, LABEL, OTHER, LABEL], 0.0) == [LABEL, OTHER]


def test_a_crowd_of_codes_does_not_make_the_kiosk_forget_one_still_in_view() -> None:
    # The memory is pruned past 64 codes; a code seen within the gap must survive that.
    debouncer = Debouncer(GAP)
    debouncer.fresh([LABEL], 0.0)
    crowd = [f"CS1.L.K1.ITEM-{n}.1.MAC" for n in range(80)]

    for n, code in enumerate(crowd):
        assert debouncer.fresh([LABEL, code], 0.01 * (n + 1)) == [code]

    assert debouncer.fresh([LABEL], 1.0) == []
    assert debouncer.fresh([crowd[0]], 1.2) == []  # the first of the crowd is still recent


def test_a_shorter_gap_lets_codes_count_again_sooner() -> None:
    debouncer = Debouncer(gap=0.5)
    debouncer.fresh([LABEL], 0.0)

    assert debouncer.fresh([LABEL], 0.6) == [LABEL]
