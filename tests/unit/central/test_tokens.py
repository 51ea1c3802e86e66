"""Signing and verifying labels, passes and enrolment codes, and the key ring behind them."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.codes import ALPHANUMERIC, MAX_CODE_LENGTH, CodeKind, classify_code
from broker.ids import ID_PATTERN, is_id
from broker.messages import Reason
from central.errors import ConfigError
from central.tokens import (
    MIN_KEY_BYTES,
    Enrolment,
    KeyRing,
    Label,
    Pass,
    TokenSigner,
    fingerprint,
    new_id,
)

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)
K1 = bytes(range(32))
K2 = bytes(range(100, 140))


def signer(keys: dict[str, bytes] | None = None, active: str = "K1") -> TokenSigner:
    return TokenSigner(KeyRing(keys or {"K1": K1}, active))


ids = st.from_regex(ID_PATTERN, fullmatch=True)
# Codes carry expiry in whole seconds, so issue them on second boundaries.
expiries = st.integers(min_value=1, max_value=400 * 86_400).map(
    lambda s: NOW + timedelta(seconds=s)
)


def issued_codes() -> list[str]:
    s = signer()
    return [
        s.label("DRILL-01", 1),
        s.label("A" * 32, 1234567),
        s.member_pass("PASS-1", "M-1001", LATER),
        s.enrolment("CLAIM-1", "SHELF-A", LATER),
    ]


# --- round trips ------------------------------------------------------------------------


def test_a_label_verifies_to_its_item_and_version() -> None:
    s = signer()
    code = s.label("DRILL-01", 3)
    assert s.verify(code, NOW) == Label("DRILL-01", 3)
    assert classify_code(code) is CodeKind.LABEL


def test_a_pass_verifies_to_its_member_and_expiry() -> None:
    s = signer()
    code = s.member_pass("PASS-1", "M-1001", LATER)
    assert s.verify(code, NOW) == Pass("PASS-1", "M-1001", LATER)
    assert classify_code(code) is CodeKind.PASS


def test_an_enrolment_code_verifies_to_its_claim_and_shelf() -> None:
    s = signer()
    code = s.enrolment("CLAIM-7", "SHELF-B", LATER)
    assert s.verify(code, NOW) == Enrolment("CLAIM-7", "SHELF-B", LATER)
    assert classify_code(code) is CodeKind.ENROL


@settings(max_examples=60, deadline=None)
@given(
    item_id=ids,
    version=st.integers(min_value=0, max_value=10**9),
    pass_id=ids,
    member_id=ids,
    expires_at=expiries,
)
def test_every_issued_code_is_qr_alphanumeric_and_round_trips(
    item_id: str, version: int, pass_id: str, member_id: str, expires_at: datetime
) -> None:
    s = signer()
    label = s.label(item_id, version)
    pass_code = s.member_pass(pass_id, member_id, expires_at)
    enrolment = s.enrolment(pass_id, member_id, expires_at)
    for code, kind in (
        (label, CodeKind.LABEL),
        (pass_code, CodeKind.PASS),
        (enrolment, CodeKind.ENROL),
    ):
        assert ALPHANUMERIC.issuperset(code), code
        assert len(code) <= MAX_CODE_LENGTH
        assert classify_code(code) is kind
    assert s.verify(label, NOW) == Label(item_id, version)
    assert s.verify(pass_code, NOW) == Pass(pass_id, member_id, expires_at)
    assert s.verify(enrolment, NOW) == Enrolment(pass_id, member_id, expires_at)


@pytest.mark.parametrize("bad", ["", "drill", "A.B", "A/B", "A" * 33])
def test_signing_refuses_ids_that_would_break_the_code_grammar(bad: str) -> None:
    s = signer()
    with pytest.raises(ValueError, match="not a valid id"):
        s.label(bad, 1)
    with pytest.raises(ValueError, match="not a valid id"):
        s.member_pass(bad, "M-1", LATER)
    with pytest.raises(ValueError, match="not a valid id"):
        s.member_pass("PASS-1", bad, LATER)
    with pytest.raises(ValueError, match="not a valid id"):
        s.enrolment("CLAIM-1", bad, LATER)


# --- forgery and garbage ----------------------------------------------------------------


@pytest.mark.parametrize("code", issued_codes(), ids=["label", "long-label", "pass", "enrol"])
def test_changing_any_one_character_never_verifies(code: str) -> None:
    s = signer()
    genuine = s.verify(code, NOW)
    assert not isinstance(genuine, Reason)
    for position, original in enumerate(code):
        for replacement in sorted(ALPHANUMERIC | {"a", "z", "_", "é"}):
            if replacement == original:
                continue
            forged = code[:position] + replacement + code[position + 1 :]
            result = s.verify(forged, NOW)
            assert result in {Reason.BAD_SIGNATURE, Reason.UNKNOWN_CODE}, (position, forged)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_truncated_or_extended_codes_never_verify(data: st.DataObject) -> None:
    code = data.draw(st.sampled_from(issued_codes()))
    cut = data.draw(st.integers(min_value=0, max_value=len(code) - 1))
    tail = data.draw(st.text(alphabet=sorted(ALPHANUMERIC), min_size=1, max_size=8))
    for forged in (code[:cut], code + tail, code[:cut] + tail + code[cut:]):
        if forged == code:
            continue
        assert signer().verify(forged, NOW) in {Reason.BAD_SIGNATURE, Reason.UNKNOWN_CODE}


@pytest.mark.parametrize(
    "text",
    ["", "HELLO WORLD", "cs1.l.k1.drill-01.1.x", "CS1.L.K1.DRILL-01", "CS1.Q.K1.A.1.B", "Ä" * 10],
)
def test_text_that_is_not_one_of_our_codes_is_unknown(text: str) -> None:
    assert signer().verify(text, NOW) is Reason.UNKNOWN_CODE


def test_a_label_printed_by_an_earlier_release_still_verifies() -> None:
    # Labels stay on the shelves for years: the MAC's spelling (HMAC-SHA256 of the body,
    # 15 bytes, base32) must never drift with how it is computed.
    ring = KeyRing({"K1": b"k" * 32}, active="K1")
    printed = "CS1.L.K1.DRILL01.3.LFFKJPHFCX3EKJSQ5E44CK4N"
    assert TokenSigner(ring).label("DRILL01", 3) == printed
    assert TokenSigner(ring).verify(printed, NOW) == Label("DRILL01", 3)


def test_codes_verify_alike_from_many_threads_at_once() -> None:
    # The consumer verifies on the event loop while the web app signs passes on its
    # threads: the keyed MAC state they share must not bleed between calls.
    s = signer()
    codes = [s.label(f"ITEM-{n}", n) for n in range(200)]

    def verify_all(_: int) -> list[Label | object]:
        return [s.verify(code, NOW) for code in codes]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(verify_all, range(8)))
    assert all(r == [Label(f"ITEM-{n}", n) for n in range(200)] for r in results)


def test_a_well_shaped_code_with_a_made_up_mac_has_a_bad_signature() -> None:
    assert signer().verify("CS1.L.K1.DRILL-01.1." + "A" * 24, NOW) is Reason.BAD_SIGNATURE


def test_a_code_signed_with_another_key_has_a_bad_signature() -> None:
    stranger = signer({"K1": K2})
    assert signer().verify(stranger.label("DRILL-01", 1), NOW) is Reason.BAD_SIGNATURE


def test_a_code_naming_an_unknown_key_id_has_a_bad_signature() -> None:
    code = signer({"K9": K1}, active="K9").label("DRILL-01", 1)
    # Same key bytes, different id: the id names the key, so this must not verify.
    assert signer({"K1": K1}).verify(code, NOW) is Reason.BAD_SIGNATURE


# --- expiry -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pass", "enrolment"])
def test_a_code_expires_exactly_at_its_expiry(kind: str) -> None:
    s = signer()
    code = (
        s.member_pass("PASS-1", "M-1", LATER)
        if kind == "pass"
        else s.enrolment("CLAIM-1", "SHELF-A", LATER)
    )
    assert not isinstance(s.verify(code, LATER - timedelta(microseconds=1)), Reason)
    assert s.verify(code, LATER) is Reason.EXPIRED
    assert s.verify(code, LATER + timedelta(seconds=1)) is Reason.EXPIRED
    assert s.verify(code, LATER + timedelta(days=365)) is Reason.EXPIRED


def test_a_tampered_expired_pass_is_a_bad_signature_not_expired() -> None:
    # The MAC is checked before expiry, so a forger learns nothing from the expiry answer.
    s = signer()
    code = s.member_pass("PASS-1", "M-1", LATER)
    forged = code[:-1] + ("B" if code[-1] == "A" else "A")
    assert s.verify(forged, LATER + timedelta(days=1)) is Reason.BAD_SIGNATURE


def test_labels_do_not_expire() -> None:
    s = signer()
    code = s.label("DRILL-01", 1)
    assert s.verify(code, NOW + timedelta(days=3650)) == Label("DRILL-01", 1)


# --- key rotation -----------------------------------------------------------------------


def test_key_rotation_keeps_old_codes_until_the_old_key_is_removed() -> None:
    old = signer({"K1": K1}, active="K1")
    old_label = old.label("DRILL-01", 1)
    old_pass = old.member_pass("PASS-1", "M-1", LATER)

    rotated = signer({"K1": K1, "K2": K2}, active="K2")
    assert rotated.verify(old_label, NOW) == Label("DRILL-01", 1)
    assert rotated.verify(old_pass, NOW) == Pass("PASS-1", "M-1", LATER)
    new_label = rotated.label("DRILL-01", 1)
    assert new_label.split(".")[2] == "K2"
    assert new_label != old_label

    retired = signer({"K2": K2}, active="K2")
    assert retired.verify(old_label, NOW) is Reason.BAD_SIGNATURE
    assert retired.verify(old_pass, NOW) is Reason.BAD_SIGNATURE
    assert retired.verify(new_label, NOW) == Label("DRILL-01", 1)


def test_key_ring_refuses_a_short_key() -> None:
    with pytest.raises(ConfigError, match="shorter"):
        KeyRing({"K1": b"x" * (MIN_KEY_BYTES - 1)}, "K1")
    with pytest.raises(ConfigError):
        KeyRing({"K1": K1, "K2": b""}, "K1")
    assert KeyRing({"K1": b"x" * MIN_KEY_BYTES}, "K1").active == "K1"


@pytest.mark.parametrize("kid", ["", "k1", "K12345", "K.1", "K/1", "K 1", "-"])
def test_key_ring_refuses_a_key_id_that_cannot_sit_in_a_code(kid: str) -> None:
    with pytest.raises(ConfigError):
        KeyRing({kid: K1}, kid)
    with pytest.raises(ConfigError):
        KeyRing({"K1": K1, kid: K2}, "K1")


def test_key_ring_refuses_an_active_key_it_does_not_hold() -> None:
    with pytest.raises(ConfigError, match="not in the key ring"):
        KeyRing({"K1": K1}, "K2")
    with pytest.raises(ConfigError):
        KeyRing({}, "K1")


def test_config_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="K2"):
        KeyRing({"K1": K1}, "K2")


# --- fingerprints and ids ---------------------------------------------------------------


@pytest.mark.parametrize("code", issued_codes())
def test_a_fingerprint_is_stable_and_never_reveals_the_code(code: str) -> None:
    print_ = fingerprint(code)
    assert print_ == fingerprint(code)
    assert re.fullmatch(r"[0-9a-f]{16}", print_)
    assert code not in print_
    assert print_ not in code
    # Nor any field of it, such as the MAC or the pass id.
    for part in code.split("."):
        if len(part) >= 4:
            assert part not in print_


def test_fingerprints_tell_codes_apart() -> None:
    codes = issued_codes()
    assert len({fingerprint(code) for code in codes}) == len(codes)


def test_a_fingerprint_copes_with_any_text() -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint("\ud800 not encodable"))


def test_new_ids_are_unique_and_id_shaped() -> None:
    minted = [new_id() for _ in range(2000)]
    assert len(set(minted)) == len(minted)
    assert all(is_id(value) for value in minted)
