"""Live pages: central's own availability changes and kiosk verdicts fanned out to browsers.

The consumer publishes every change and verdict to the broker; :class:`Tee` hands a copy
to the :class:`Hub`, which keeps a bounded queue per connected page (a slow page loses old
updates, never slows the consumer). Verdicts go only to the member whose session they
belong to, and cost nothing while no member has a page open. The staff console's live feed
(:meth:`Hub.watch`) gets every verdict, its member id shortened and never a code's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any

from broker.messages import Availability, Reason, Verdict, parse_message
from central.consumer import Publisher
from central.mqtt import Inbound

log = logging.getLogger(__name__)

_QUEUE = 64
COALESCE_S = 0.25  # pages hear about availability at most this often


# The member whose session a kiosk's latest verdict belongs to (a database read).
Resolver = Callable[[str], Awaitable[str | None]]


class Hub:
    """Fans availability changes out to every connected catalogue page."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[bytes]] = set()
        self._members: dict[str, set[asyncio.Queue[Verdict]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.resolve: Resolver | None = None
        self._pending: dict[str, dict[str, object]] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._staff: set[asyncio.Queue[bytes]] = set()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def verdict(self, verdict: Verdict) -> None:
        """Offer a kiosk's verdict to staff feeds, and to the member of that kiosk's session."""
        if self._staff:
            self._spawn(self._feed(verdict))
        if not self._members or self.resolve is None:
            return
        if not (verdict.session_open or verdict.reason is Reason.SESSION_CLOSED):
            return  # no session: nobody's phone to tell
        self._spawn(self._route(self.resolve, verdict))

    async def _feed(self, verdict: Verdict) -> None:
        member = None
        if self.resolve is not None and (
            verdict.session_open or verdict.reason is Reason.SESSION_CLOSED
        ):
            member = shorten(await self.resolve(verdict.kiosk_id))
        frame = sse_frame(
            "scan",
            {
                "at": verdict.decided_at.isoformat(),
                "kiosk_id": verdict.kiosk_id,
                "reason": verdict.reason.value,
                "accepted": verdict.accepted,
                "item_id": verdict.item_id,
                "item": verdict.item_name,
                "member": member,
            },
        )
        _offer(self._staff, frame)

    @contextlib.asynccontextmanager
    async def watch(self) -> AsyncIterator[asyncio.Queue[bytes]]:
        """A staff page's queue: every verdict and availability change, while the block runs."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(_QUEUE)
        self._staff.add(queue)
        try:
            yield queue
        finally:
            self._staff.discard(queue)

    @property
    def watchers(self) -> int:
        """Staff pages watching the feed now."""
        return len(self._staff)

    async def _route(self, resolve: Resolver, verdict: Verdict) -> None:
        member_id = await resolve(verdict.kiosk_id)
        for queue in self._members.get(member_id or "", ()):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(verdict)

    @contextlib.asynccontextmanager
    async def follow(self, member_id: str) -> AsyncIterator[asyncio.Queue[Verdict]]:
        """A queue of the verdicts for ``member_id``'s sessions, while the block runs."""
        queue: asyncio.Queue[Verdict] = asyncio.Queue(_QUEUE)
        self._members.setdefault(member_id, set()).add(queue)
        try:
            yield queue
        finally:
            mine = self._members.get(member_id, set())
            mine.discard(queue)
            if not mine:
                self._members.pop(member_id, None)

    @property
    def clients(self) -> int:
        """Catalogue pages connected now."""
        return len(self._queues)

    @property
    def followers(self) -> int:
        """Members with a page following their kiosk sessions now."""
        return len(self._members)

    def publish(self, change: Availability) -> None:
        """Note one change; pages get every change of the last ``COALESCE_S`` in one event.

        Coalescing bounds the fan-out's cost by the number of pages, not the scan rate: at
        1,000 pages and 500 scans/s, one event per page per interval instead of 500.
        """
        if not self._queues and not self._staff:
            return
        self._pending[change.item_id] = {
            "item_id": change.item_id,
            "state": change.state.value,
            "due_at": change.due_at.isoformat() if change.due_at else None,
            "changed_at": change.changed_at.isoformat(),
        }
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(COALESCE_S, self._send)

    def _send(self) -> None:
        self._flush = None
        changes, self._pending = list(self._pending.values()), {}
        frame = sse_frame("availability", {"changes": changes})  # encoded once for all
        _offer(self._queues, frame)
        _offer(self._staff, frame)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[bytes]]:
        """A queue of encoded changes for one page, for as long as the block runs."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(_QUEUE)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)


def _offer(queues: set[asyncio.Queue[bytes]], frame: bytes) -> None:
    """Put ``frame`` on every queue; a full one drops its oldest frame (a slow page)."""
    for queue in queues:
        if queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
        queue.put_nowait(frame)


def shorten(member_id: str | None) -> str | None:
    """A member id as the staff feed shows it: enough to tell two apart, not to look one up."""
    if not member_id:
        return None
    return member_id if len(member_id) <= 4 else f"{member_id[:2]}…{member_id[-2:]}"


def sse_frame(event: str, data: Mapping[str, object]) -> bytes:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class Tee:
    """A consumer publisher that also hands availability changes to the hub."""

    def __init__(self, inner: Publisher, hub: Hub) -> None:
        self._inner = inner
        self._hub = hub

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        """Publish through the link; copy availability to the hub."""
        self._inner.publish(topic, payload, retain=retain, qos=qos)
        # On the consumer's hot path: parse only what some open page will use, and never
        # let a page's trouble reach the scan stream.
        try:
            if topic.endswith("/availability") and (self._hub.clients or self._hub.watchers):
                self._hub.publish(parse_message(Availability, payload))
            elif topic.endswith("/verdict") and (self._hub.followers or self._hub.watchers):
                self._hub.verdict(parse_message(Verdict, payload))
        except Exception:
            log.exception("live pages missed an update on %s", topic[:128])

    def ack(self, message: Inbound) -> None:
        """Acknowledge through the link."""
        self._inner.ack(message)
