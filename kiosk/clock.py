"""Time and sleeping as an injected object, so patterns and timeouts test without waiting."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds, wall time, and an awaitable sleep."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes back."""

    def wall(self) -> datetime:
        """The current UTC time (for scan timestamps)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def wall(self) -> datetime:
        """``datetime.now(UTC)``."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock tests advance by hand; sleepers wake when time passes their deadline."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        """The time the test has advanced to."""
        return self._now

    def wall(self) -> datetime:
        """A wall time that moves with the monotonic one."""
        return datetime.fromtimestamp(1_767_600_000 + self._now, UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait until the test advances past now + ``seconds``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._now + max(0.0, seconds), future))
        await future

    async def advance(self, seconds: float, step: float = 0.005) -> None:
        """Move time forward in small steps, letting every woken task run."""
        target = self._now + seconds
        while True:
            await asyncio.sleep(0)
            due = [s for s in self._sleepers if s[0] <= self._now]
            for entry in due:
                self._sleepers.remove(entry)
                if not entry[1].done():
                    entry[1].set_result(None)
            for _ in range(5):
                await asyncio.sleep(0)
            if self._now >= target:
                return
            self._now = min(target, self._now + step)
