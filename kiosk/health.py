"""The camera's recent frame rate and median decode time, for the kiosk's status."""

from __future__ import annotations

import statistics
from collections import deque


class FrameStats:
    """The last ``window`` frames: when each was read and how long its decode took."""

    def __init__(self, window: int = 90) -> None:
        self._at: deque[float] = deque(maxlen=window)
        self._decode_s: deque[float] = deque(maxlen=window)

    def frame(self, at: float, decode_s: float) -> None:
        """One frame read at monotonic ``at`` and decoded in ``decode_s`` seconds."""
        self._at.append(at)
        self._decode_s.append(decode_s)

    def reset(self) -> None:
        """Forget every frame (a new camera starts its own record)."""
        self._at.clear()
        self._decode_s.clear()

    def fps(self, now: float) -> float | None:
        """Frames per second over the window, up to ``now``; None before two frames.

        Measured up to now rather than to the last frame, so a camera that stops
        delivering shows its rate falling instead of the last good figure.
        """
        if len(self._at) < 2:
            return None
        span = now - self._at[0]
        if span <= 0:
            return None
        return round((len(self._at) - 1) / span, 1)

    def decode_ms(self) -> float | None:
        """The median decode time of the window's frames, in milliseconds."""
        if not self._decode_s:
            return None
        return round(statistics.median(self._decode_s) * 1000, 2)
