"""What retained state central must publish again after it (re)connects to the broker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Mosquitto writes its persistence file (sessions and retained messages, one snapshot)
# every ``autosave_interval`` seconds and on a clean stop: broker/mosquitto/*.conf say 5.
# tests/unit/central/test_republish.py fails if a configuration saves less often.
BROKER_AUTOSAVE_S = 5.0
# Slack for clocks and scheduling between the broker's save and central's bookkeeping.
_SLACK_S = 2.0


@dataclass(frozen=True, slots=True)
class Republish:
    """The retained topics to publish again: all of them, or the few named."""

    everything: bool
    topics: frozenset[str] = frozenset()

    def covers(self, topic: str) -> bool:
        """Whether ``topic``'s retained copy must be published again."""
        return self.everything or topic in self.topics

    @property
    def nothing(self) -> bool:
        """Whether there is nothing to publish (so nothing to read either)."""
        return not self.everything and not self.topics


EVERYTHING = Republish(everything=True)


def after_connect(
    *,
    first: bool,
    session_present: bool,
    published: Mapping[str, float],
    down_since: float | None,
    keepalive_s: float,
    autosave_s: float = BROKER_AUTOSAVE_S,
) -> Republish:
    """What the broker may lack after this connect, from what central knows.

    - The process's first connect: everything. Central may have died between a commit
      and its publish; the database is the truth, and one republish per central start
      is cheap.
    - The broker kept no session for us (``session present`` off: it was wiped, started
      without persistence, or our session expired): everything, it may have lost all.
    - It kept our session: it restored its persistence file, which holds the retained
      messages of the same moment as the sessions (or it never went down: a network
      blip). Only what we published after its last save can be missing: at most one
      autosave interval before it went down, which we notice at most 1.5 keepalives
      later; anything published while we were away is in that window too.
    """
    if first or not session_present or down_since is None:
        return EVERYTHING
    cutoff = down_since - 1.5 * keepalive_s - autosave_s - _SLACK_S
    return Republish(
        everything=False,
        topics=frozenset(topic for topic, at in published.items() if at >= cutoff),
    )
