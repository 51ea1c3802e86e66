"""One process of the fleet simulator: thousands of simulated kiosks on one event loop.

Each kiosk is a ``bench.fleet_mqtt.LeanClient`` (raw MQTT 5 packets, one asyncio protocol
per kiosk; ``--client paho`` plays each with ``broker.transport.LoopClient``, the transport
real kiosks use, at about ten times the CPU per message) that behaves as ``kiosk/mqtt.py``
and ``kiosk/core.py`` do on the wire: its own persistent session, a
retained ``online`` status with a last will ``offline``, its verdict/config/command topics
and its shelf's availability, an outbox of unanswered events re-sent on every connect and
every 5 s. Members walk up at a steady rate with real signed codes. The process reports to
the coordinator (``bench/fleet.py``) twice a second over a multiprocessing queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import resource
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from typing import Any

try:
    import uvloop
except ImportError:  # a venv built before uvloop was pinned: asyncio's loop, slower
    uvloop = None  # type: ignore[assignment]

from bench.fleet_mqtt import LeanClient
from broker import topics
from broker.errors import ContractError
from broker.messages import (
    Availability,
    AvailabilityState,
    CodeScan,
    KioskState,
    KioskStatus,
    Reason,
    SessionDone,
    Verdict,
    encode,
    parse_message,
)
from broker.transport import LoopClient

REPORT_EVERY_S = 0.5
RESEND_EVERY_S = 5.0  # as kiosk.settings.resend_every_s
VERDICT_WAIT_S = 10.0  # a member waits this long, then walks away (the event stays queued)
# The walk-up mix: a member with a pass checking items out, a return, a code that is not
# valid (tampered label), a pass shown a second time.
MIX = {"checkout": 0.45, "return": 0.35, "bad_code": 0.1, "reused_pass": 0.1}


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker process plays: its kiosks, the codes, the pace (picklable)."""

    index: int
    port: int
    kiosks: list[tuple[str, str]]  # (kiosk id, shelf id)
    shelf_labels: dict[str, dict[str, str]]  # shelf id -> item id -> label code
    passes: list[str]
    walkups_per_s: float
    seed: int
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Cold start only, per process: faster overflows the broker's accept queue (see
    # bench/fleet_mqtt.py CONNECT_TIMEOUT_S) and the fleet starts with reconnects.
    connects_per_s: float = 1000.0
    keepalive_s: int = 10
    client: str = "raw"  # "raw": bench.fleet_mqtt.LeanClient; "paho": LoopClient


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (a socket per kiosk); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass(frozen=True, slots=True)
class Heard:
    """One distinct availability payload, decoded once for every kiosk that receives it."""

    item_id: str
    seq: int
    state: AvailabilityState
    key: str  # the change: item id#seq
    changed_at: float  # central's decision, epoch seconds

    @classmethod
    def of(cls, availability: Availability) -> Heard:
        return cls(
            availability.item_id,
            availability.seq,
            availability.state,
            f"{availability.item_id}#{availability.seq}",
            availability.changed_at.timestamp(),
        )


@dataclass
class Pending:
    """One event waiting in a kiosk's outbox for its verdict."""

    payload: bytes
    first_sent: float | None
    last_sent: float
    waiter: asyncio.Future[Verdict] | None = None


class SimKiosk:
    """One simulated kiosk: a real MQTT session and the wire behaviour of a real kiosk."""

    def __init__(self, worker: Worker, kiosk_id: str, shelf_id: str) -> None:
        self.worker = worker
        self.kiosk_id = kiosk_id
        self.shelf_id = shelf_id
        user, password = worker.plan.credentials.get(kiosk_id, (None, None))
        self.mqtt: LeanClient | LoopClient
        if worker.plan.client == "paho":
            self.mqtt = LoopClient(
                f"kiosk-{kiosk_id}",
                "127.0.0.1",
                worker.plan.port,
                username=user,
                password=password,
                keepalive=worker.plan.keepalive_s,
                session_expiry_s=3600,
                backoff=(0.5, 8.0),
            )
            self.mqtt.on_message = lambda m: self._message(
                m.topic, bytes(m.payload), bool(m.retain)
            )
        else:
            self.mqtt = LeanClient(
                f"kiosk-{kiosk_id}",
                "127.0.0.1",
                worker.plan.port,
                username=user,
                password=password,
                keepalive=worker.plan.keepalive_s,
                session_expiry_s=3600,
                backoff=(0.5, 8.0),
            )
            self.mqtt.on_message = self._message
        self.mqtt.on_up = self._up
        self.mqtt.on_down = self._down
        self.online = False
        self.outbox: dict[str, Pending] = {}
        self.availability: dict[str, tuple[int, AvailabilityState]] = {}
        self.unsynced: set[str] = set(worker.plan.shelf_labels[shelf_id])
        self.busy = False
        self.config_seen = False

    def _status(self, state: KioskState) -> bytes:
        return encode(
            KioskStatus(
                kiosk_id=self.kiosk_id,
                state=state,
                software_version="fleet-sim",
                config_version=0,
                outbox_depth=len(self.outbox),
                at=datetime.now(UTC),
            )
        )

    async def run(self) -> None:
        self.mqtt.will_set(topics.status(self.kiosk_id), self._status(KioskState.OFFLINE))
        await self.mqtt.run()

    # -- wire -----------------------------------------------------------------------------

    def _up(self) -> None:
        self.online = True
        self.worker.connects += 1
        self.unsynced = set(self.worker.plan.shelf_labels[self.shelf_id])
        for topic in (
            topics.verdict(self.kiosk_id),
            topics.config(self.kiosk_id),
            topics.command(self.kiosk_id),
        ):
            self.mqtt.subscribe(topic, qos=1)
        # As kiosk/mqtt.py: availability at QoS 0, subscribed again on every connect so the
        # broker hands over the retained current state.
        self.mqtt.subscribe(topics.shelf_availability(self.shelf_id), qos=0)
        self.mqtt.publish(
            topics.status(self.kiosk_id), self._status(KioskState.ONLINE), qos=1, retain=True
        )
        now = time.monotonic()
        for pending in self.outbox.values():  # as kiosk/core.py: re-send on every connect
            self.publish(pending, now)

    def _down(self) -> None:
        self.online = False
        self.worker.drops += 1

    def publish(self, pending: Pending, now: float) -> None:
        if pending.first_sent is None:
            pending.first_sent = now
        pending.last_sent = now
        self.mqtt.publish(topics.scan(self.kiosk_id), pending.payload, qos=1)

    def _message(self, topic: str, payload: bytes, retained: bool) -> None:
        try:
            if topic.endswith("/availability"):
                self._availability(payload, retained=retained)
            elif topic.endswith("/verdict"):
                self._verdict(parse_message(Verdict, payload))
            elif topic.endswith("/config"):
                self.config_seen = True
        except ContractError:
            self.worker.bad_messages += 1

    def _availability(self, payload: bytes, *, retained: bool) -> None:
        received = time.time()
        heard = self.worker.parse_availability(payload)
        item_id = heard.item_id
        self.unsynced.discard(item_id)
        current = self.availability.get(item_id)
        if current is not None and current[0] >= heard.seq:
            return  # stale or repeated, as kiosk/core.py keeps the highest seq
        self.availability[item_id] = (heard.seq, heard.state)
        if not retained:
            # A live change: from central's decision time (its publish follows the commit)
            # to this kiosk having it.
            self.worker.delivered(heard, received)

    def _verdict(self, verdict: Verdict) -> None:
        if verdict.kiosk_id != self.kiosk_id:
            return
        pending = self.outbox.pop(verdict.event_id, None)
        if pending is None:
            self.worker.repeated_verdicts += 1  # a redelivery: already answered
            return
        self.worker.answered(verdict, pending)
        if pending.waiter is not None and not pending.waiter.done():
            pending.waiter.set_result(verdict)

    # -- walking up -------------------------------------------------------------------------

    async def send(self, event: CodeScan | SessionDone, *, wait: bool = True) -> Verdict | None:
        """Keep ``event`` until answered; publish it now if online; the verdict if it comes."""
        loop = asyncio.get_running_loop()
        pending = Pending(encode(event), None, 0.0, loop.create_future() if wait else None)
        self.outbox[event.event_id] = pending
        self.worker.sent(event)
        if self.online:
            self.publish(pending, time.monotonic())
        if pending.waiter is None:
            return None
        try:
            async with asyncio.timeout(VERDICT_WAIT_S):
                return await pending.waiter
        except TimeoutError:
            return None
        finally:
            pending.waiter = None

    def scan(self, code: str, *, queued: bool = False) -> CodeScan:
        return CodeScan(
            event_id=uuid.uuid4().hex,
            kiosk_id=self.kiosk_id,
            code=code,
            scanned_at=datetime.now(UTC),
            queued=queued,
        )

    def items_in(self, state: AvailabilityState) -> list[str]:
        return [i for i, (_seq, s) in self.availability.items() if s is state]


class Worker:
    """All simulated kiosks of one process, their walk-ups, and what they measured."""

    def __init__(self, plan: WorkerPlan, reports: Queue[Any], commands: Queue[Any]) -> None:
        self.plan = plan
        self.reports = reports
        self.commands = commands
        self.rng = random.Random(plan.seed)
        self.kiosks: list[SimKiosk] = []
        self.passes = list(plan.passes)
        self.used_passes: list[str] = []
        self.connects = 0
        self.drops = 0
        self.bad_messages = 0
        self.repeated_verdicts = 0
        self.events_sent = 0
        self.events_answered = 0
        self.skipped_offline = 0
        self.reasons: Counter[str] = Counter()
        self.verdict_ms: list[float] = []
        # item id#seq -> [changed_at, {latency ms: receivers}], reset every report.
        self.changes: dict[str, list[Any]] = {}
        self._parsed: dict[bytes, Heard] = {}
        self.walking = True

    # -- bookkeeping the kiosks call --------------------------------------------------------

    def parse_availability(self, payload: bytes) -> Heard:
        # Ten thousand kiosks get the same bytes: decode each distinct payload once.
        known = self._parsed.get(payload)
        if known is None:
            if len(self._parsed) > 4096:
                self._parsed.clear()
            known = self._parsed[payload] = Heard.of(parse_message(Availability, payload))
        return known

    def delivered(self, heard: Heard, received: float) -> None:
        record = self.changes.get(heard.key)
        if record is None:
            record = self.changes[heard.key] = [heard.changed_at, {}]
        hist = record[1]
        latency_ms = int((received - heard.changed_at) * 1000)
        hist[latency_ms] = hist.get(latency_ms, 0) + 1

    def sent(self, _event: CodeScan | SessionDone) -> None:
        self.events_sent += 1

    def answered(self, verdict: Verdict, pending: Pending) -> None:
        self.events_answered += 1
        self.reasons[verdict.reason.value] += 1
        if pending.first_sent is not None:
            self.verdict_ms.append((time.monotonic() - pending.first_sent) * 1000)

    # -- running --------------------------------------------------------------------------

    async def run(self) -> None:
        if self.plan.client == "paho":
            # LoopClient connects in a worker thread (a blocked connect must not stall the
            # loop); during a reconnect storm thousands wait at once, so give them room.
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=64))
        async with asyncio.TaskGroup() as group:
            for kiosk_id, shelf_id in self.plan.kiosks:
                kiosk = SimKiosk(self, kiosk_id, shelf_id)
                self.kiosks.append(kiosk)
                group.create_task(kiosk.run(), name=kiosk_id)
                # Paced first start; reconnects later are paced only by their backoff.
                await asyncio.sleep(1 / self.plan.connects_per_s)
            group.create_task(self._walkups(), name="walkups")
            group.create_task(self._resender(), name="resender")
            group.create_task(self._reporter(), name="reporter")
            if self.plan.client != "paho":
                group.create_task(self._pinger(), name="pinger")
            await self._obey()
            raise asyncio.CancelledError  # leave the TaskGroup: every kiosk stops

    async def _obey(self) -> None:
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.1)
                continue
            if command[0] == "pause":
                self.walking = False
            elif command[0] == "check":
                self.reports.put(("checked", self.plan.index, self.stale(command[1])))
            elif command[0] == "stop":
                self.reports.put(("final", self.plan.index, self.final()))
                return

    def stale(self, truth: dict[str, int]) -> list[tuple[str, str, int, int]]:
        """(kiosk, item, its seq, central's seq) wherever a kiosk's view differs."""
        wrong = []
        for kiosk in self.kiosks:
            for item_id in self.plan.shelf_labels[kiosk.shelf_id]:
                mine = kiosk.availability.get(item_id, (-1, None))[0]
                if mine != truth[item_id]:
                    wrong.append((kiosk.kiosk_id, item_id, mine, truth[item_id]))
        return wrong

    def snapshot(self) -> dict[str, Any]:
        report = {
            "worker": self.plan.index,
            "at": time.time(),
            "kiosks": len(self.kiosks),
            "connected": sum(k.online for k in self.kiosks),
            "synced": sum(k.online and not k.unsynced for k in self.kiosks),
            "connects": self.connects,
            "drops": self.drops,
            "outbox": sum(len(k.outbox) for k in self.kiosks),
            "sent": self.events_sent,
            "answered": self.events_answered,
            "repeated_verdicts": self.repeated_verdicts,
            "bad_messages": self.bad_messages,
            "skipped_offline": self.skipped_offline,
            "verdict_ms": self.verdict_ms,
            "changes": self.changes,
        }
        self.verdict_ms = []
        self.changes = {}
        return report

    def final(self) -> dict[str, Any]:
        return {
            **self.snapshot(),
            "reasons": dict(self.reasons),
            "unanswered": [e for k in self.kiosks for e in k.outbox],
        }

    async def _reporter(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            self.reports.put(("snapshot", self.plan.index, self.snapshot()))

    async def _pinger(self) -> None:
        # LoopClient pings from a timer per client; here one sweep a second does it for all,
        # a tenth of the kiosks every 0.1 s: a burst of thousands of pings at once would
        # queue ahead of a fan-out at the broker.
        slices = 10
        turn = 0
        while True:
            await asyncio.sleep(1.0 / slices)
            now = time.monotonic()
            for kiosk in self.kiosks[turn::slices]:
                if isinstance(kiosk.mqtt, LeanClient):
                    kiosk.mqtt.ping_if_idle(now)
            turn = (turn + 1) % slices

    async def _resender(self) -> None:
        # As kiosk/core.py's ticker: an unanswered event goes out again every 5 s.
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for kiosk in self.kiosks:
                if kiosk.outbox and kiosk.online:
                    for pending in list(kiosk.outbox.values()):
                        if now - pending.last_sent >= RESEND_EVERY_S:
                            kiosk.publish(pending, now)

    async def _walkups(self) -> None:
        rate = self.plan.walkups_per_s
        tick = 0.05
        owed = 0.0
        while True:
            await asyncio.sleep(tick)
            if not self.walking or rate <= 0:
                continue
            owed += rate * tick
            while owed >= 1:
                owed -= 1
                kiosk = self.rng.choice(self.kiosks)
                if not kiosk.busy:
                    kiosk.busy = True
                    asyncio.get_running_loop().create_task(self._walkup(kiosk))

    async def _walkup(self, kiosk: SimKiosk) -> None:
        try:
            kind = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
            labels = self.plan.shelf_labels[kiosk.shelf_id]
            if not kiosk.online:
                # Offline, a real kiosk queues returns and refuses everything else locally.
                out = kiosk.items_in(AvailabilityState.CHECKED_OUT)
                if kind == "return" and out:
                    label = labels[self.rng.choice(out)]
                    await kiosk.send(kiosk.scan(label, queued=True), wait=False)
                else:
                    self.skipped_offline += 1
                return
            if kind == "checkout" and self.passes:
                code = self.passes.pop()
                self.used_passes.append(code)
                verdict = await kiosk.send(kiosk.scan(code))
                if verdict is None or verdict.reason is not Reason.SESSION_OPENED:
                    return
                for _ in range(self.rng.randint(1, 2)):
                    await asyncio.sleep(self.rng.uniform(0.2, 1.0))
                    free = kiosk.items_in(AvailabilityState.AVAILABLE) or list(labels)
                    await kiosk.send(kiosk.scan(labels[self.rng.choice(free)]))
                await asyncio.sleep(self.rng.uniform(0.2, 1.0))
                done = SessionDone(
                    event_id=uuid.uuid4().hex, kiosk_id=kiosk.kiosk_id, scanned_at=datetime.now(UTC)
                )
                await kiosk.send(done)
            elif kind == "return":
                out = kiosk.items_in(AvailabilityState.CHECKED_OUT) or list(labels)
                await kiosk.send(kiosk.scan(labels[self.rng.choice(out)]))
            elif kind == "reused_pass" and self.used_passes:
                await kiosk.send(kiosk.scan(self.rng.choice(self.used_passes)))
            else:
                label = labels[self.rng.choice(list(labels))]
                # One character of the signature changed: BAD_SIGNATURE at central.
                tampered = label[:-1] + ("A" if label[-1] != "A" else "B")
                await kiosk.send(kiosk.scan(tampered))
        finally:
            kiosk.busy = False


def worker_main(plan: WorkerPlan, reports: Queue[Any], commands: Queue[Any]) -> None:
    """Entry point of a worker process."""
    raise_fd_limit()

    async def main() -> None:
        await Worker(plan, reports, commands).run()

    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        if plan.client == "paho" or uvloop is None:
            asyncio.run(main())  # paho as measured before: its sockets on asyncio's loop
        else:
            # libuv's loop takes a socket's bytes to the protocol in a few microseconds;
            # asyncio's selector loop spends more per ready socket than the MQTT parsing.
            uvloop.run(main())
