"""Live availability for the catalogue: central's own availability events fanned out to pages.

The consumer publishes every change to the broker; :class:`Tee` hands a copy to the
:class:`Hub`, which keeps a bounded queue per connected page (a slow page loses old
updates, never slows the consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from broker import topics
from broker.messages import Availability, parse_message
from central.consumer import Publisher
from central.mqtt import Inbound

_QUEUE = 64


class Hub:
    """Fans availability changes out to every connected catalogue page."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Availability]] = set()

    @property
    def clients(self) -> int:
        """Pages connected now."""
        return len(self._queues)

    def publish(self, change: Availability) -> None:
        """Offer one change to every page (dropping a slow page's oldest update)."""
        for queue in self._queues:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(change)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Availability]]:
        """A queue of changes for one page, for as long as the block runs."""
        queue: asyncio.Queue[Availability] = asyncio.Queue(_QUEUE)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)


class Tee:
    """A consumer publisher that also hands availability changes to the hub."""

    def __init__(self, inner: Publisher, hub: Hub) -> None:
        self._inner = inner
        self._hub = hub

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        """Publish through the link; copy availability to the hub."""
        self._inner.publish(topic, payload, retain=retain, qos=qos)
        if topic.startswith(topics.ROOT) and topic.endswith("/availability"):
            self._hub.publish(parse_message(Availability, payload))

    def ack(self, message: Inbound) -> None:
        """Acknowledge through the link."""
        self._inner.ack(message)
