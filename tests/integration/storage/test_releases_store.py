"""Releases and rollouts on both stores: one rollout at a time, state changes only from the
states that allow them, per-kiosk progress upserted, every change audited."""

from __future__ import annotations

import hashlib

import pytest

from central.clock import FakeClock
from central.storage.releases import ReleaseRefusedError, ReleaseRow, RolloutState
from tests.unit.central.support import KIOSK_A, KIOSK_B, AnyStore

ARTIFACT = b"PK\x03\x04 a wheel, as far as the store cares"


def release(version: str = "0.2.0", artifact: bytes = ARTIFACT) -> ReleaseRow:
    now = FakeClock().now()
    digest = hashlib.sha256(artifact).hexdigest()
    return ReleaseRow(version, digest, len(artifact), "c2ln", "notes", "ada", now)


async def test_a_release_is_stored_once_with_its_bytes(library: AnyStore, clock: FakeClock) -> None:
    stored = await library.add_release(release(), ARTIFACT, "ada", clock.now())
    assert (stored.version, stored.size) == ("0.2.0", len(ARTIFACT))
    assert await library.release_artifact("0.2.0") == ARTIFACT
    assert [r.version for r in await library.list_releases()] == ["0.2.0"]
    with pytest.raises(ReleaseRefusedError):
        await library.add_release(release(), ARTIFACT, "ada", clock.now())  # same version
    with pytest.raises(ReleaseRefusedError):
        await library.add_release(release("0.2.1"), ARTIFACT, "ada", clock.now())  # same file
    assert await library.release_artifact("9.9.9") is None


async def test_one_rollout_at_a_time_and_only_allowed_changes(
    library: AnyStore, clock: FakeClock
) -> None:
    await library.add_release(release(), ARTIFACT, "ada", clock.now())
    with pytest.raises(ReleaseRefusedError):
        await library.start_rollout(
            "9.9.9", percent=10, kiosks=(), abort_percent=20, abort_min=1, reason="x",
            actor="ada", now=clock.now(),
        )  # fmt: skip
    first = await library.start_rollout(
        "0.2.0", percent=50, kiosks=(KIOSK_B, KIOSK_A), abort_percent=20, abort_min=2,
        reason="pilot", actor="ada", now=clock.now(),
    )  # fmt: skip
    assert first.state is RolloutState.RUNNING
    assert first.kiosks == (KIOSK_A, KIOSK_B)
    with pytest.raises(ReleaseRefusedError, match="still in progress"):
        await library.start_rollout(
            "0.2.0", percent=10, kiosks=(), abort_percent=20, abort_min=1, reason="again",
            actor="ada", now=clock.now(),
        )  # fmt: skip
    paused = await library.change_rollout(
        first.rollout_id, RolloutState.PAUSED, reason="weekend", actor="ada", now=clock.now()
    )
    assert paused.state is RolloutState.PAUSED
    with pytest.raises(ReleaseRefusedError, match="cannot halted"):
        await library.change_rollout(
            first.rollout_id, RolloutState.HALTED, reason="x", actor="ada", now=clock.now()
        )
    await library.change_rollout(
        first.rollout_id, RolloutState.RUNNING, reason="monday", actor="ada", now=clock.now()
    )
    halted = await library.change_rollout(
        first.rollout_id, RolloutState.HALTED, reason="2 of 3 failed", actor="sys",
        now=clock.now(),
    )  # fmt: skip
    assert (halted.state, halted.halt_reason) == (RolloutState.HALTED, "2 of 3 failed")
    running = await library.list_rollouts(states=(RolloutState.RUNNING,))
    assert running == []
    # Finished, so the next one may start.
    second = await library.start_rollout(
        "0.2.0", percent=0, kiosks=(KIOSK_A,), abort_percent=20, abort_min=1, reason="retry",
        actor="ada", now=clock.now(),
    )  # fmt: skip
    assert second.rollout_id > first.rollout_id
    actions = [e.action for e in await library.audit_tail(20)]
    for action in (
        "release.publish",
        "release.rollout_start",
        "release.rollout_paused",
        "release.rollout_running",
        "release.rollout_halted",
    ):
        assert action in actions


async def test_kiosk_progress_is_one_row_per_kiosk_counting_offers(
    library: AnyStore, clock: FakeClock
) -> None:
    await library.add_release(release(), ARTIFACT, "ada", clock.now())
    rollout = await library.start_rollout(
        "0.2.0", percent=100, kiosks=(), abort_percent=20, abort_min=1, reason="all",
        actor="ada", now=clock.now(),
    )  # fmt: skip
    rid = rollout.rollout_id
    await library.record_update(rid, KIOSK_A, "offered", None, clock.now(), offered=True)
    await library.record_update(rid, KIOSK_A, "offered", None, clock.now(), offered=True)
    await library.record_update(rid, KIOSK_A, "refused", "BAD_HASH", clock.now())
    await library.record_update(rid, KIOSK_B, "offered", None, clock.now(), offered=True)
    rows = {r.kiosk_id: r for r in await library.rollout_kiosks(rid)}
    assert (rows[KIOSK_A].state, rows[KIOSK_A].reason, rows[KIOSK_A].offers) == (
        "refused",
        "BAD_HASH",
        2,
    )
    assert rows[KIOSK_A].offered_at is not None
    assert (rows[KIOSK_B].state, rows[KIOSK_B].offers) == ("offered", 1)
