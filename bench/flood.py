"""One kiosk flooding its scan topic with garbage at the broker's full rate, over a raw socket.

Run in a process of its own (:func:`start`), so neither paho's per-message cost nor the
measuring process's threads limit the rate: the broker's TCP back-pressure does. Payloads
are unparseable bytes and schema-invalid JSON (wrong version, missing fields, over
central's 4 KiB limit yet under the broker's packet limit), each with a fresh event id,
sent at QoS 0 and at QoS 1 (never more QoS 1 in flight than the broker's receive maximum).
The flooder listens to its own verdict topic at QoS 0 and reports what it was told and
when; it reconnects if dropped, as an attacker would. It talks to 127.0.0.1 only and stops
by itself at its deadline or message budget.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import re
import select
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue

from bench import raw_mqtt
from broker import topics
from broker.messages import MAX_PAYLOAD_BYTES

_REASON = re.compile(rb'"reason":"([A-Z_]+)"')
_CHUNK = 256  # packets built per refill of the send buffer
# Just over central's parse limit, well under the broker's packet limit (which disconnects
# the sender): the biggest garbage that still reaches central.
_OVERSIZE = MAX_PAYLOAD_BYTES + 64
_PAD = b"A" * (_OVERSIZE - len(b'{"v":1,"event_id":"FLOOD00000000000","pad":""}'))


@dataclass
class FloodReport:
    """What the flooder sent and what came back; times are wall-clock (``time.time()``)."""

    started: float = 0.0
    stopped: float = 0.0
    # By "<kind>/qos<n>", counted as queued for the socket: a dropped connection loses at
    # most the one 64 KiB buffer not yet written.
    sent: Counter[str] = field(default_factory=Counter)
    pubacks: Counter[int] = field(default_factory=Counter)  # by PUBACK reason code
    connacks: Counter[int] = field(default_factory=Counter)  # by CONNACK reason code
    disconnects: int = 0
    receive_max: int = 0  # QoS 1 publishes the broker said it takes unacknowledged
    verdicts: Counter[str] = field(default_factory=Counter)  # by verdict reason
    first_verdict: dict[str, float] = field(default_factory=dict)  # reason -> when first seen

    @property
    def total(self) -> int:
        """Messages sent."""
        return sum(self.sent.values())

    @property
    def rate(self) -> float:
        """Messages sent per second."""
        span = self.stopped - self.started
        return self.total / span if span > 0 else 0.0


def garbage(n: int, kiosk_id: bytes) -> tuple[str, bytes]:
    """The ``n``-th garbage payload and its kind; every one has a fresh event id."""
    event_id = b"FLOOD%011d" % n
    slot = n % 16
    if slot == 0:
        return "too_large", b'{"v":1,"event_id":"' + event_id + b'","pad":"' + _PAD + b'"}'
    if slot % 2:
        return "not_json", b"\xff\xfe{not json " + event_id
    if slot % 4 == 2:
        # A scan missing its code and time: the consumer salvages the event id to answer.
        return "bad_fields", (
            b'{"v":1,"type":"code","event_id":"' + event_id + b'","kiosk_id":"' + kiosk_id + b'"}'
        )
    return "bad_version", (
        b'{"v":2,"type":"code","event_id":"'
        + event_id
        + b'","kiosk_id":"'
        + kiosk_id
        + b'","code":"X","scanned_at":"2026-01-01T00:00:00Z"}'
    )


class _Link:
    """One raw connection as the flooding kiosk."""

    def __init__(self, port: int, kiosk_id: str, username: str | None, password: str | None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(raw_mqtt.connect(kiosk_id, username=username, password=password))
        self.inbox = bytearray()
        self.reason, self.receive_max = 0x80, 0
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed before CONNACK")
            self.inbox += data
            packets = raw_mqtt.split(self.inbox)
            if packets and packets[0].kind == raw_mqtt.CONNACK:
                self.reason, self.receive_max = raw_mqtt.connack(packets[0])
                break
        if self.reason < 0x80:
            self.sock.sendall(raw_mqtt.subscribe(topics.verdict(kiosk_id), qos=0))
        self.sock.setblocking(False)
        self.outbox = bytearray()
        self.inflight = 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def flood(
    port: int,
    kiosk_id: str,
    *,
    seconds: float,
    max_messages: int,
    username: str | None = None,
    password: str | None = None,
) -> FloodReport:
    """Flood until ``seconds`` pass or ``max_messages`` are sent; what happened."""
    report = FloodReport(started=time.time())
    deadline = time.monotonic() + seconds
    source = _Garbage(kiosk_id)
    link: _Link | None = None
    while time.monotonic() < deadline and source.n < max_messages:
        if link is None:
            link = _connect(port, kiosk_id, username, password, report)
            continue
        if len(link.outbox) < 65536:
            source.fill(link, report)
        try:
            _pump(link, report)
        except OSError:
            report.disconnects += 1
            link.close()
            link = None
    if link is not None:
        link.close()
    report.stopped = time.time()
    return report


class _Garbage:
    """Numbered garbage PUBLISH packets for one kiosk's scan topic."""

    def __init__(self, kiosk_id: str) -> None:
        self.topic = raw_mqtt.utf8(topics.scan(kiosk_id))
        self.kiosk_id = kiosk_id.encode()
        self.n = 0
        self.packet_id = 0

    def fill(self, link: _Link, report: FloodReport) -> None:
        for _ in range(_CHUNK):
            kind, payload = garbage(self.n, self.kiosk_id)
            # Alternate QoS by blocks of 16, so every kind of garbage goes out at both.
            qos = 1 if self.n // 16 % 2 and link.inflight < link.receive_max else 0
            if qos:
                self.packet_id = self.packet_id % 65535 + 1
                link.inflight += 1
            link.outbox += raw_mqtt.publish(self.topic, payload, qos=qos, packet_id=self.packet_id)
            report.sent[f"{kind}/qos{qos}"] += 1
            self.n += 1


def _connect(
    port: int, kiosk_id: str, username: str | None, password: str | None, report: FloodReport
) -> _Link | None:
    """A fresh link, or None (after a pause) if the broker would not have it."""
    try:
        link = _Link(port, kiosk_id, username, password)
    except OSError:
        report.disconnects += 1
        time.sleep(0.1)
        return None
    report.connacks[link.reason] += 1
    report.receive_max = link.receive_max
    if link.reason >= 0x80:
        link.close()
        time.sleep(0.1)
        return None
    return link


def _pump(link: _Link, report: FloodReport) -> None:
    """Send what the socket takes, read what the broker said; OSError if it hung up."""
    readable, writable, _ = select.select([link.sock], [link.sock], [], 0.05)
    try:
        if writable:
            del link.outbox[: link.sock.send(link.outbox)]
        if readable:
            data = link.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("broker closed the connection")
            link.inbox += data
            _read(link, report)
    except (BlockingIOError, InterruptedError):
        pass


def _read(link: _Link, report: FloodReport) -> None:
    for packet in raw_mqtt.split(link.inbox):
        if packet.kind == raw_mqtt.PUBACK:
            link.inflight = max(0, link.inflight - 1)
            report.pubacks[raw_mqtt.puback_reason(packet)] += 1
        elif packet.kind == raw_mqtt.PUBLISH:
            found = _REASON.search(raw_mqtt.publish_payload(packet))
            reason = found.group(1).decode() if found else "?"
            report.verdicts[reason] += 1
            report.first_verdict.setdefault(reason, time.time())
        elif packet.kind == raw_mqtt.DISCONNECT:
            raise ConnectionError("broker sent DISCONNECT")


def _child(out: Queue[FloodReport], port: int, kiosk_id: str, kwargs: dict[str, object]) -> None:
    out.put(flood(port, kiosk_id, **kwargs))  # type: ignore[arg-type]


@dataclass
class Flooder:
    """A running flooder process and where its report will arrive."""

    process: SpawnProcess
    results: Queue[FloodReport]

    def report(self, timeout: float) -> FloodReport | None:
        """Wait for the report (the process stops by itself); None if it never came."""
        try:
            found: FloodReport | None = self.results.get(timeout=timeout)
        except Exception:  # queue.Empty, or the child died mid-pickle
            found = None
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        return found


def start(
    port: int,
    kiosk_id: str,
    *,
    seconds: float,
    max_messages: int,
    username: str | None = None,
    password: str | None = None,
) -> Flooder:
    """Start the flood in a fresh process (spawned: the caller may have threads)."""
    context = multiprocessing.get_context("spawn")
    results: Queue[FloodReport] = context.Queue()
    kwargs: dict[str, object] = {
        "seconds": seconds,
        "max_messages": max_messages,
        "username": username,
        "password": password,
    }
    process = context.Process(
        target=_child, args=(results, port, kiosk_id, kwargs), name="flood", daemon=True
    )
    process.start()
    return Flooder(process, results)
