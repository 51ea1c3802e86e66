"""A staged rollout's rules, pure: who is in the cohort, what to do about a kiosk, when to halt.

Halting follows AWS IoT Jobs' abort configuration: once at least ``abort_min`` kiosks
have finished (healthy or failed), the rollout halts by itself when failures reach
``abort_percent`` of them. A halted rollout offers nothing more; kiosks already updated
keep the release, the ones that failed have rolled themselves back.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from broker.messages import KioskState, KioskStatus, UpdateState

# What central stores per kiosk (kiosk_updates.state): the kiosk's own states plus "offered".
OFFERED = "offered"
FAILED_STATES = frozenset({UpdateState.ROLLED_BACK.value, UpdateState.REFUSED.value})


def rank(rollout_id: int, kiosk_id: str) -> bytes:
    """A kiosk's place in a rollout's queue: stable for the rollout, fresh for the next one."""
    return hashlib.sha256(f"{rollout_id}:{kiosk_id}".encode()).digest()


def cohort(
    rollout_id: int, fleet: Iterable[str], *, percent: int, allow: Sequence[str]
) -> frozenset[str]:
    """The kiosks a rollout goes to: the allow-list, plus ``percent`` of the rest (rounded up).

    Exact counts rather than a per-kiosk coin: 50 % of 6 kiosks is 3, not "about 3".
    """
    fleet = sorted(set(fleet))
    chosen = set(allow) & set(fleet)
    rest = sorted((k for k in fleet if k not in chosen), key=lambda k: rank(rollout_id, k))
    take = math.ceil(len(rest) * percent / 100)
    return frozenset(chosen | set(rest[:take]))


class Step(StrEnum):
    """What central does about one kiosk of the cohort at one look."""

    WAIT = "wait"  # offline, or busy with it: nothing to do now
    OFFER = "offer"  # send (or re-send) the offer
    RECORD = "record"  # the kiosk reports something new: store it


@dataclass(frozen=True, slots=True)
class KioskView:
    """One kiosk as the rollout sees it: its newest status and what central stored."""

    status: KioskStatus | None
    stored_state: str | None
    offered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Decision:
    """A step and, for RECORD, the state and reason to store."""

    step: Step
    state: str | None = None
    reason: str | None = None


def reported(rollout_id: int, version: str, status: KioskStatus | None) -> tuple[str, str | None]:
    """(state, reason) the kiosk reports for this rollout, or ("", None) if nothing yet."""
    if status is None:
        return "", None
    update = status.update
    if update is not None and update.rollout_id == rollout_id:
        if update.state is UpdateState.INSTALLED and status.software_version == version:
            return UpdateState.INSTALLED.value, None  # up on trial, not yet confirmed
        return update.state.value, update.reason.value if update.reason else None
    if status.software_version == version:
        return UpdateState.HEALTHY.value, None  # already on it (another rollout, or by hand)
    return "", None


def decide(
    rollout_id: int, version: str, kiosk: KioskView, now: datetime, resend: timedelta
) -> Decision:
    """What to do about one cohort kiosk now."""
    state, reason = reported(rollout_id, version, kiosk.status)
    if state and state != kiosk.stored_state:
        return Decision(Step.RECORD, state, reason)
    if state in FAILED_STATES or state == UpdateState.HEALTHY.value:
        return Decision(Step.WAIT)  # finished, one way or the other
    online = kiosk.status is not None and kiosk.status.state is KioskState.ONLINE
    if not online:
        return Decision(Step.WAIT)  # it catches up when it comes back
    if kiosk.stored_state in (None, OFFERED) and (
        kiosk.offered_at is None or now - kiosk.offered_at >= resend
    ):
        # Offers are not retained: repeat them until the kiosk reports, so one that was
        # busy (a member at the shelf), restarting, or away catches up.
        return Decision(Step.OFFER)
    return Decision(Step.WAIT)


@dataclass(frozen=True, slots=True)
class Tally:
    """How a rollout's cohort stands."""

    cohort: int
    healthy: int
    failed: int

    @property
    def finished(self) -> int:
        """Kiosks done with it, either way."""
        return self.healthy + self.failed


def tally(cohort_size: int, states: Iterable[str]) -> Tally:
    """Count the stored states of a rollout's kiosks."""
    states = list(states)
    return Tally(
        cohort_size,
        sum(s == UpdateState.HEALTHY.value for s in states),
        sum(s in FAILED_STATES for s in states),
    )


def should_halt(counts: Tally, *, abort_percent: int, abort_min: int) -> bool:
    """Whether failures are enough to stop offering the release (AWS IoT Jobs' rule)."""
    if counts.failed == 0 or counts.finished < abort_min:
        return False
    return counts.failed * 100 >= abort_percent * counts.finished


def is_done(counts: Tally) -> bool:
    """Every kiosk of the cohort runs the release."""
    return counts.cohort > 0 and counts.healthy >= counts.cohort
