"""The rollout flag's rule: who it admits in each mode, and the kiosk's idle light."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from central.api.rollout import FlagIn
from central.rollout import admits, bucket, kiosk_checkout_enabled
from central.storage.rollout import FlagMode, FlagRow, FlagSetting

T0 = datetime(2026, 1, 5, tzinfo=UTC)
MEMBERS = [f"M-{n}" for n in range(2000)]


def flag(setting: FlagSetting, *, tripped: bool = False) -> FlagRow:
    return FlagRow(setting, "test", "admin:test", T0, T0 if tripped else None, None, None)


def admitted(percent: int) -> set[str]:
    row = flag(FlagSetting(FlagMode.PERCENTAGE, percent=percent))
    return {m for m in MEMBERS if admits(row, member_id=m, kiosk_id="K-1", item_id=None)}


def test_percentage_grows_without_dropping_anyone() -> None:
    previous: set[str] = set()
    for percent in range(101):
        now = admitted(percent)
        assert previous <= now, f"someone admitted below {percent} % is out at {percent} %"
        previous = now
    assert admitted(0) == set()
    assert admitted(100) == set(MEMBERS)


def test_percentage_admits_about_that_share_and_the_same_members_every_time() -> None:
    assert 0.08 < len(admitted(10)) / len(MEMBERS) < 0.12
    assert 0.45 < len(admitted(50)) / len(MEMBERS) < 0.55
    # A hash of the id alone: no process state (Python's hash() would differ per process).
    assert [bucket(m) for m in ("M-1", "M-2")] == [53, 34]


@pytest.mark.parametrize("mode", list(FlagMode))
def test_a_tripped_breaker_admits_no_one_in_any_mode(mode: FlagMode) -> None:
    setting = FlagSetting(
        mode,
        members=("M-1",) if mode is FlagMode.ALLOW_LIST else (),
        percent=100 if mode is FlagMode.PERCENTAGE else 0,
    )
    row = flag(setting, tripped=True)
    assert not admits(row, member_id="M-1", kiosk_id="K-1", item_id="I-1")
    assert not kiosk_checkout_enabled(row, "K-1")


def test_the_idle_light_follows_the_flag() -> None:
    assert kiosk_checkout_enabled(flag(FlagSetting(FlagMode.ON)), "K-1")
    assert not kiosk_checkout_enabled(flag(FlagSetting(FlagMode.OFF)), "K-1")
    assert not kiosk_checkout_enabled(flag(FlagSetting(FlagMode.PERCENTAGE, percent=0)), "K-1")
    assert kiosk_checkout_enabled(flag(FlagSetting(FlagMode.PERCENTAGE, percent=1)), "K-1")
    pilot = flag(FlagSetting(FlagMode.ALLOW_LIST, kiosks=("K-1",)))
    assert kiosk_checkout_enabled(pilot, "K-1")
    assert not kiosk_checkout_enabled(pilot, "K-2")
    # A member pilot: any kiosk may serve one of them, so every kiosk looks open.
    assert kiosk_checkout_enabled(flag(FlagSetting(FlagMode.ALLOW_LIST, members=("M-1",))), "K-2")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"mode": "allow-list"}, "allow-list needs"),
        ({"mode": "on", "members": ["M-1"]}, "only go with mode allow-list"),
        ({"mode": "percentage"}, "percentage needs"),
        ({"mode": "off", "percent": 5}, "percent only goes with"),
        ({"mode": "allow-list", "items": ["drill"]}, "is not an id"),
        ({"mode": "on", "reason": "ok"}, "at least 3 characters"),
        ({"mode": "on", "colour": "red"}, "Extra inputs"),
    ],
)
def test_the_api_refuses_a_setting_that_does_not_fit_its_mode(
    body: dict[str, object], error: str
) -> None:
    with pytest.raises(ValidationError, match=error):
        FlagIn.model_validate({"reason": "because", **body})
