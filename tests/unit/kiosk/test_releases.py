"""The kiosk's release state: a trial is counted at each start and rolled back when it
crashes or misses its deadline; refusals and confirmations are remembered for the status."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.messages import UpdateRefusal, UpdateState
from broker.release import check_artifact, signed_bytes
from kiosk.releases import (
    MAX_TRIAL_STARTS,
    ReleaseDir,
    ReleaseState,
    begin_trial,
    confirm,
    on_start,
    refused,
)

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def trial_of(version: str = "0.2.0") -> ReleaseState:
    return begin_trial(ReleaseState(current="0.1.5"), version, 4, NOW + timedelta(minutes=2))


def test_a_trial_counts_its_starts_then_a_crash_loop_rolls_back() -> None:
    state = trial_of()
    for start in range(1, MAX_TRIAL_STARTS + 1):
        state = on_start(state, NOW)
        assert state.current == "0.2.0"
        assert state.trial is not None
        assert state.trial.starts == start
    state = on_start(state, NOW)
    assert state.current == "0.1.5"  # back to what ran before
    assert state.trial is None
    assert state.failed == ["0.2.0"]
    assert state.last is not None
    assert (state.last.state, state.last.reason) == (
        UpdateState.ROLLED_BACK,
        UpdateRefusal.CRASH_LOOP,
    )


def test_a_trial_past_its_deadline_rolls_back_as_not_healthy() -> None:
    state = on_start(trial_of(), NOW + timedelta(minutes=3))
    assert state.current == "0.1.5"
    assert state.last is not None
    assert state.last.reason is UpdateRefusal.NOT_HEALTHY


def test_a_confirmed_trial_stays_and_later_starts_change_nothing() -> None:
    state = confirm(on_start(trial_of(), NOW))
    assert state.trial is None
    assert state.current == "0.2.0"
    assert state.previous == "0.1.5"
    assert state.last is not None
    assert state.last.state is UpdateState.HEALTHY
    assert on_start(state, NOW + timedelta(days=1)) == state


def test_the_state_survives_a_restart_on_disk(tmp_path: Path) -> None:
    releases = ReleaseDir(tmp_path)
    assert releases.load() == ReleaseState()
    state = refused(trial_of(), 5, "0.3.0", UpdateRefusal.BAD_SIGNATURE)
    releases.save(state)
    assert ReleaseDir(tmp_path).load() == state
    assert not list((tmp_path / "releases").glob(".*tmp"))


def test_an_artifact_is_taken_only_with_its_signed_hash_under_a_trusted_key() -> None:
    key = Ed25519PrivateKey.generate()
    data = b"wheel bytes"
    digest = hashlib.sha256(data).hexdigest()
    good = base64.b64encode(key.sign(signed_bytes("0.2.0", digest))).decode()
    trusted = [key.public_key()]

    def check(payload: bytes, version: str, signature: str, keys=trusted):  # type: ignore[no-untyped-def]
        return check_artifact(
            payload, version=version, sha256=digest, signature=signature, trusted=keys
        )

    assert check(data, "0.2.0", good) is None
    assert check(data + b"x", "0.2.0", good) is UpdateRefusal.BAD_HASH
    # The version is signed too: the same file cannot pass as another release.
    assert check(data, "9.9.9", good) is UpdateRefusal.BAD_SIGNATURE
    rogue = Ed25519PrivateKey.generate()
    forged = base64.b64encode(rogue.sign(signed_bytes("0.2.0", digest))).decode()
    assert check(data, "0.2.0", forged) is UpdateRefusal.BAD_SIGNATURE
    assert check(data, "0.2.0", "not base64!") is UpdateRefusal.BAD_SIGNATURE
    assert check(data, "0.2.0", good, keys=[]) is UpdateRefusal.NO_TRUSTED_KEY
