"""How fast Mosquitto fans one availability change out to N receivers, and what each copy costs.

    python -m bench.fanout_probe --receivers 10000 --changes 30
    python -m bench.fanout_probe --receivers 10000 --changes 30 --every 1 --far-end lean --procs 2

The fleet simulator's kiosks are paho clients in a few Python processes; on two shared
cores their receive path, not the broker, sets the availability latency it measures. This
probe takes the far end out: N bare MQTT 5 connections, each subscribed to one item's
availability at QoS 0, read with one ``selectors`` loop that only frames packets. One paho
client publishes real ``Availability`` messages (``broker/messages.py``) on the real
topic; the probe times publish -> the N-th socket has the bytes. ``--far-end lean`` puts the
fleet simulator's kiosks there instead (``bench/fleet_worker.py``, ``--procs`` processes, no
central): the end-to-end fan-out of ``bench/fleet.py`` without the walk-ups. Either way it
prints the broker's and the far end's CPU per copy (process CPU over the changes, less the
same span of idle CPU measured just before). Loopback, bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import selectors
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
import psutil
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench import raw_mqtt
from bench.fleet import BROKER_EXTRA, Fleet, Seeded, broker_dir
from bench.fleet_worker import raise_fd_limit
from broker import topics
from broker.local import LocalBroker
from broker.messages import Availability, AvailabilityState, encode

SHELF, ITEM = "SHELF-PROBE", "ITEM-PROBE"


@dataclass
class Outcome:
    """What the changes measured."""

    to_all: list[float] = field(default_factory=list)  # ms to the last receiver, per change
    first: list[float] = field(default_factory=list)  # ms to the first receiver, per change
    deliveries: Counter[int] = field(default_factory=Counter)  # ms -> copies (lean far end)
    broker_us: float = float("nan")  # broker CPU per copy
    far_end_us: float = float("nan")  # receivers' CPU per copy


class _Cpu:
    """CPU seconds of a set of processes, and the rate they burn when idle."""

    def __init__(self, pids: list[int]) -> None:
        self._procs = [psutil.Process(pid) for pid in pids]

    def now(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self._procs)


class Receivers:
    """N bare connections; counts PUBLISH packets per socket and when each arrived."""

    def __init__(self, port: int, n: int, qos: int = 0) -> None:
        self.selector = selectors.DefaultSelector()
        self.buffers: dict[int, bytearray] = {}
        self.arrivals: list[float] = []
        for k in range(n):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Clean start, keepalive 600 s (the probe's run is shorter).
            sock.sendall(raw_mqtt.connect(f"probe-{k}", keepalive=600))
            sock.sendall(raw_mqtt.subscribe(topics.availability(SHELF, ITEM), qos=qos))
            sock.setblocking(False)
            self.buffers[sock.fileno()] = bytearray()
            self.selector.register(sock, selectors.EVENT_READ)

    def pump(self, until: float) -> None:
        while time.perf_counter() < until:
            for key, _ in self.selector.select(timeout=0.05):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                now = time.perf_counter()
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                buf = self.buffers[sock.fileno()]
                buf += data
                for packet in raw_mqtt.split(buf):
                    if packet.kind == raw_mqtt.PUBLISH:
                        self.arrivals.append(now)
                        _parts, packet_id = raw_mqtt.publish_parts(packet)
                        if packet_id:  # QoS 1: acknowledge, as a kiosk would
                            sock.send(raw_mqtt.puback(packet_id))


def main(argv: Sequence[str] | None = None) -> int:
    """Publish ``--changes`` availability changes to ``--receivers`` sockets; print the times."""
    parser = argparse.ArgumentParser(prog="python -m bench.fanout_probe", description=__doc__)
    parser.add_argument("--receivers", type=int, default=10000)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between changes")
    parser.add_argument(
        "--far-end",
        choices=["bare", "lean"],
        default="bare",
        help="bare sockets in this process, or the fleet simulator's lean kiosks",
    )
    parser.add_argument("--procs", type=int, default=2, help="simulator processes (lean)")
    parser.add_argument(
        "--qos", type=int, choices=[0, 1], default=0, help="publish and subscribe at (bare)"
    )
    parser.add_argument(
        "--payload-bytes", type=int, help="publish this many bytes instead of the message (bare)"
    )
    args = parser.parse_args(argv)
    raise_fd_limit()
    root = Path(tempfile.mkdtemp(prefix="cs-fanout-"))
    try:
        if args.far_end == "lean":
            out = asyncio.run(
                _play_lean(root, args.receivers, args.changes, args.every, args.procs)
            )
        else:
            out = _play(
                root,
                args.receivers,
                args.changes,
                args.every,
                qos=args.qos,
                payload_bytes=args.payload_bytes,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if not out.to_all:
        print("no change reached every receiver")
        return 1
    q = _quantiles(out.to_all)
    print(
        f"{args.receivers:,} {args.far_end} receivers, {len(out.to_all)} changes: first copy p50"
        f" {statistics.median(out.first):.1f} ms; last copy p50 {q[49]:.1f} ms,"
        f" p99 {q[98]:.1f} ms, max {max(out.to_all):.1f} ms"
    )
    if out.deliveries:
        ms = sorted(out.deliveries.elements())
        each = _quantiles([float(m) for m in ms])
        print(f"per delivery p50 {each[49]:.0f} ms, p99 {each[98]:.0f} ms")
    print(
        f"CPU per copy: broker {out.broker_us:.1f} µs, far end {out.far_end_us:.1f} µs"
        f" (1-min load average {os.getloadavg()[0]:.1f})"
    )
    return 0


def _quantiles(values: list[float]) -> list[float]:
    if len(values) == 1:
        return values * 99
    return statistics.quantiles(values, n=100, method="inclusive")


def _change(seq: int, item: str = ITEM) -> tuple[str, bytes]:
    message = Availability(
        item_id=item,
        shelf_id=SHELF,
        name="probe",
        state=AvailabilityState.CHECKED_OUT if seq % 2 else AvailabilityState.AVAILABLE,
        seq=seq,
        changed_at=datetime.now(UTC),
    )
    return topics.availability(SHELF, item), encode(message)


def _publisher(port: int) -> paho.Client:
    publisher = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="probe-pub", protocol=MQTTProtocolVersion.MQTTv5
    )
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    deadline = time.monotonic() + 30
    while not publisher.is_connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    return publisher


def _play(
    root: Path,
    n: int,
    changes: int,
    every: float,
    *,
    qos: int = 0,
    payload_bytes: int | None = None,
) -> Outcome:
    """Bare sockets in this process on the far end."""
    out = Outcome()
    with LocalBroker(broker_dir(root), extra_config=BROKER_EXTRA) as broker:
        assert broker.process is not None
        # Before the receivers: paho's own loop thread uses select(), which refuses file
        # descriptors above 1024, so its socket must be opened first.
        publisher = _publisher(broker.port)
        receivers = Receivers(broker.port, n, qos)
        receivers.pump(time.perf_counter() + 3 + n / 1000)  # CONNACKs, SUBACKs
        broker_cpu, far_cpu = _Cpu([broker.process.pid]), _Cpu([os.getpid()])
        b0, f0, t0 = broker_cpu.now(), far_cpu.now(), time.monotonic()
        receivers.pump(time.perf_counter() + 2)  # idle: keep-alive and the loop's own ticks
        idle = time.monotonic() - t0
        idle_broker, idle_far = (broker_cpu.now() - b0) / idle, (far_cpu.now() - f0) / idle
        b0, f0, t0 = broker_cpu.now(), far_cpu.now(), time.monotonic()
        copies = 0
        for seq in range(1, changes + 1):
            topic, payload = _change(seq)
            if payload_bytes is not None:
                payload = payload[:payload_bytes].ljust(payload_bytes, b" ")
            receivers.arrivals.clear()
            sent = time.perf_counter()
            publisher.publish(topic, payload, qos=qos, retain=True)
            receivers.pump(sent + every)
            got = sorted(receivers.arrivals)
            copies += len(got)
            if len(got) < n:
                print(f"change {seq}: only {len(got)} of {n} receivers")
                continue
            out.first.append((got[0] - sent) * 1000)
            out.to_all.append((got[-1] - sent) * 1000)
        span = time.monotonic() - t0
        out.broker_us = (broker_cpu.now() - b0 - idle_broker * span) / max(copies, 1) * 1e6
        out.far_end_us = (far_cpu.now() - f0 - idle_far * span) / max(copies, 1) * 1e6
        publisher.loop_stop()
        publisher.disconnect()
    return out


async def _play_lean(root: Path, n: int, changes: int, every: float, procs: int) -> Outcome:
    """The fleet simulator's lean kiosks on the far end, all following one shelf."""
    out = Outcome()
    seeded = Seeded([(f"KIOSK-{k:05d}", SHELF) for k in range(n)], {SHELF: {ITEM: ""}}, [])
    with LocalBroker(broker_dir(root), extra_config=BROKER_EXTRA) as broker:
        assert broker.process is not None
        publisher = _publisher(broker.port)
        publisher.publish(*_change(1), qos=0, retain=True)  # what each kiosk syncs on
        fleet = Fleet(broker.port, seeded, procs=procs, walkups_per_s=0).start()
        try:
            ramp = await fleet.until(fleet.all_back, since=time.time(), within=n / 100 + 60)
            if ramp is None:
                raise RuntimeError(f"the kiosks did not come up: {fleet.totals()}")
            broker_cpu, far_cpu = _Cpu([broker.process.pid]), _Cpu(fleet.pids)
            b0, f0, t0 = broker_cpu.now(), far_cpu.now(), time.monotonic()
            await asyncio.sleep(3)  # idle: keep-alive pings, the workers' timers
            idle = time.monotonic() - t0
            idle_broker, idle_far = (broker_cpu.now() - b0) / idle, (far_cpu.now() - f0) / idle
            started = time.time()
            b0, f0, t0 = broker_cpu.now(), far_cpu.now(), time.monotonic()
            for seq in range(2, changes + 2):
                publisher.publish(*_change(seq), qos=0, retain=True)
                await asyncio.sleep(every)
            span = time.monotonic() - t0
            spent_broker, spent_far = broker_cpu.now() - b0, far_cpu.now() - f0
            await asyncio.sleep(1.0)  # the workers' last reports
            fleet.pump()
        finally:
            fleet.kill()
            publisher.loop_stop()
            publisher.disconnect()
    copies = 0
    for changed_at, counts in fleet.changes.values():
        if changed_at < started:
            continue
        copies += sum(counts.values())
        if sum(counts.values()) < n:
            print(f"a change reached only {sum(counts.values())} of {n} kiosks")
            continue
        out.deliveries.update(counts)
        out.first.append(float(min(counts)))
        out.to_all.append(float(max(counts)))
    out.broker_us = (spent_broker - idle_broker * span) / max(copies, 1) * 1e6
    out.far_end_us = (spent_far - idle_far * span) / max(copies, 1) * 1e6
    return out


if __name__ == "__main__":
    sys.exit(main())
