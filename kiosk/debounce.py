"""Turns "this code is in view" frame after frame into one scan per presentation."""

from __future__ import annotations


class Debouncer:
    """A code counts once when it enters view, and again only after leaving it for ``gap`` s.

    Decoders miss the odd frame even with a code held steady, so "left view" means unseen
    for ``gap`` seconds, not for one frame.
    """

    def __init__(self, gap: float = 1.5) -> None:
        self._gap = gap
        self._last_seen: dict[str, float] = {}

    def fresh(self, codes: list[str], now: float) -> list[str]:
        """Which of ``codes`` (seen at ``now``) are new presentations."""
        new = [
            c
            for c in dict.fromkeys(codes)
            if now - self._last_seen.get(c, float("-inf")) > self._gap
        ]
        for code in codes:
            self._last_seen[code] = now
        if len(self._last_seen) > 64:
            self._last_seen = {c: t for c, t in self._last_seen.items() if now - t <= self._gap}
        return new
