"""The kiosk's installed releases on disk, and the pure rules for which one to start.

Each fleet release is a wheel of this project unpacked (by pip, ``--target``) into
``<state_dir>/releases/<version>/``; ``state.json`` beside them says which one runs, which
ran before, and whether the current one is still on trial. The Debian package's own
install is the base, used when no release is chosen (``current`` is None). A trial ends
healthy when the new version confirms itself, or is rolled back by the launcher when it
misses its deadline or keeps crashing (kiosk/launch.py), so a bad release cannot keep the
kiosk down: the code that decides lives in the base install, not in the release.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from broker.messages import UpdateProgress, UpdateRefusal, UpdateState

STATE_FILE = "state.json"
# Starts a trial version gets before it counts as a crash loop (systemd restarts it every 2 s).
MAX_TRIAL_STARTS = 3


class Trial(BaseModel):
    """A version started for the first time, not yet known to work."""

    model_config = ConfigDict(extra="forbid")

    version: str
    rollout_id: int
    deadline: AwareDatetime = Field(description="Healthy by then, or rolled back.")
    starts: int = Field(default=0, ge=0, description="How often the launcher started it.")


class ReleaseState(BaseModel):
    """What ``state.json`` holds."""

    model_config = ConfigDict(extra="forbid")

    current: str | None = Field(default=None, description="Running release; None: the base.")
    previous: str | None = Field(default=None, description="What ran before it (rollback).")
    trial: Trial | None = None
    last: UpdateProgress | None = Field(default=None, description="Newest outcome to report.")
    failed: list[str] = Field(default=[], description="Versions rolled back from here.")


class ReleaseDir:
    """``<state_dir>/releases``: the unpacked versions and their ``state.json``."""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / "releases"

    def path(self, version: str) -> Path:
        """Where ``version`` is (or will be) unpacked."""
        return self.root / version

    def load(self) -> ReleaseState:
        """The state; an empty one before the first update."""
        try:
            return ReleaseState.model_validate_json((self.root / STATE_FILE).read_bytes())
        except FileNotFoundError:
            return ReleaseState()

    def save(self, state: ReleaseState) -> None:
        """Write atomically (temp, fsync, rename): a power cut leaves the old or the new."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{STATE_FILE}.tmp"
        with tmp.open("w") as out:
            out.write(state.model_dump_json(indent=1))
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.root / STATE_FILE)


def begin_trial(
    state: ReleaseState, version: str, rollout_id: int, deadline: datetime
) -> ReleaseState:
    """``version`` is unpacked: start it next, on trial, keeping the running one to return to."""
    return state.model_copy(
        update={
            "previous": state.current,
            "current": version,
            "trial": Trial(version=version, rollout_id=rollout_id, deadline=deadline),
            "last": UpdateProgress(
                rollout_id=rollout_id, version=version, state=UpdateState.INSTALLED
            ),
        }
    )


def confirm(state: ReleaseState) -> ReleaseState:
    """The trial version came up healthy: it stays."""
    if state.trial is None:
        return state
    trial = state.trial
    return state.model_copy(
        update={
            "trial": None,
            "last": UpdateProgress(
                rollout_id=trial.rollout_id, version=trial.version, state=UpdateState.HEALTHY
            ),
        }
    )


def on_start(state: ReleaseState, now: datetime) -> ReleaseState:
    """What the launcher does at each start: count a trial's start, or roll it back."""
    trial = state.trial
    if trial is None:
        return state
    if now >= trial.deadline:
        return rolled_back(state, UpdateRefusal.NOT_HEALTHY)
    if trial.starts >= MAX_TRIAL_STARTS:
        return rolled_back(state, UpdateRefusal.CRASH_LOOP)
    return state.model_copy(update={"trial": trial.model_copy(update={"starts": trial.starts + 1})})


def rolled_back(state: ReleaseState, why: UpdateRefusal) -> ReleaseState:
    """Back to the version that ran before the trial; the failed one is not tried again."""
    trial = state.trial
    assert trial is not None
    return state.model_copy(
        update={
            "current": state.previous,
            "previous": None,
            "trial": None,
            "failed": [*state.failed, trial.version][-20:],
            "last": UpdateProgress(
                rollout_id=trial.rollout_id,
                version=trial.version,
                state=UpdateState.ROLLED_BACK,
                reason=why,
            ),
        }
    )


def refused(state: ReleaseState, rollout_id: int, version: str, why: UpdateRefusal) -> ReleaseState:
    """An offer this kiosk would not install (nothing on disk changed)."""
    return state.model_copy(
        update={
            "last": UpdateProgress(
                rollout_id=rollout_id, version=version, state=UpdateState.REFUSED, reason=why
            )
        }
    )


def describe(state: ReleaseState) -> str:
    """One line for the log."""
    return json.dumps(state.model_dump(mode="json", exclude={"failed"}), sort_keys=True)
