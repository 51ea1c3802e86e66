"""Rotating phone passes: what central accepts from a phone's clock, and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from broker.codes import ALPHANUMERIC, PASS_KINDS, classify_code
from broker.messages import Reason
from central.tokens import STEP_S, DevicePass, KeyRing, Pass, TokenSigner

K1 = b"k" * 32
K2 = b"j" * 32
NOW = datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)


def signer(active: str = "K1", retired: dict[str, datetime] | None = None) -> TokenSigner:
    return TokenSigner(KeyRing({"K1": K1, "K2": K2}, active, retired=retired))


def test_a_phone_code_is_a_pass_in_qr_alphanumeric_mode() -> None:
    code = signer().device_pass("M-1001", "DEVICE1", NOW)
    assert ALPHANUMERIC.issuperset(code)
    assert classify_code(code) in PASS_KINDS
    token = signer().verify(code, NOW)
    assert isinstance(token, DevicePass)
    assert isinstance(token, Pass)  # the ledger needs nothing new
    assert (token.member_id, token.device_id) == ("M-1001", "DEVICE1")


def test_each_step_is_its_own_single_use_pass() -> None:
    s = signer()
    first = s.verify(s.device_pass("M-1001", "DEVICE1", NOW), NOW)
    later = NOW + timedelta(seconds=STEP_S)
    second = s.verify(s.device_pass("M-1001", "DEVICE1", later), later)
    assert isinstance(first, DevicePass)
    assert isinstance(second, DevicePass)
    assert first.pass_id != second.pass_id
    assert s.device_pass("M-1001", "DEVICE1", NOW) == s.device_pass(
        "M-1001", "DEVICE1", NOW + timedelta(seconds=1)
    )  # the same code all through its step


def test_a_code_is_good_for_a_minute_and_one_step_of_phone_clock_ahead() -> None:
    s = signer()
    code = s.device_pass("M-1001", "DEVICE1", NOW)
    step_start = datetime.fromtimestamp(int(NOW.timestamp()) // STEP_S * STEP_S, UTC)
    assert isinstance(s.verify(code, step_start + timedelta(seconds=59)), DevicePass)
    assert s.verify(code, step_start + timedelta(seconds=60)) is Reason.EXPIRED
    ahead = s.device_pass("M-1001", "DEVICE1", NOW + timedelta(seconds=STEP_S))
    assert isinstance(s.verify(ahead, NOW), DevicePass)
    far_ahead = s.device_pass("M-1001", "DEVICE1", NOW + timedelta(seconds=3 * STEP_S))
    assert s.verify(far_ahead, NOW) is Reason.EXPIRED


def test_codes_under_a_key_retired_past_its_grace_are_refused() -> None:
    code = signer().device_pass("M-1001", "DEVICE1", NOW)
    rotated = signer("K2", retired={"K1": NOW - timedelta(days=2)})
    assert rotated.verify(code, NOW) is Reason.BAD_SIGNATURE


def test_tampered_member_device_or_step_never_verifies() -> None:
    s = signer()
    code = s.device_pass("M-1001", "DEVICE1", NOW)
    for old, new in (("M-1001", "M-1002"), ("DEVICE1", "DEVICE2"), (".K1.", ".K2.")):
        assert s.verify(code.replace(old, new), NOW) is Reason.BAD_SIGNATURE
    body, _, mac = code.rpartition(".")
    step = body.rsplit(".", 1)[1]
    bumped = body[: -len(step)] + ("Z" * len(step))
    assert s.verify(f"{bumped}.{mac}", NOW) is Reason.BAD_SIGNATURE
    too_long = code.replace("DEVICE1", "D" * 21)
    assert s.verify(too_long, NOW) is Reason.BAD_SIGNATURE
