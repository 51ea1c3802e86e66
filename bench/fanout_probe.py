"""How fast Mosquitto alone fans one availability change out to N sockets (no paho on the far end).

    python -m bench.fanout_probe --receivers 10000 --changes 30

The fleet simulator's kiosks are paho clients in a few Python processes; on two shared
cores their receive path, not the broker, sets the availability latency it measures. This
probe takes the far end out: N bare MQTT 5 connections, each subscribed to one item's
availability at QoS 0, read with one ``selectors`` loop that only frames packets. One paho
client publishes real ``Availability`` messages (``broker/messages.py``) on the real
topic; the probe times publish -> the N-th socket has the bytes. Loopback, bounded.
"""

from __future__ import annotations

import argparse
import selectors
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench import raw_mqtt
from bench.fleet import BROKER_EXTRA, broker_dir
from bench.fleet_worker import raise_fd_limit
from broker import topics
from broker.local import LocalBroker
from broker.messages import Availability, AvailabilityState, encode

SHELF, ITEM = "SHELF-PROBE", "ITEM-PROBE"


class Receivers:
    """N bare connections; counts PUBLISH packets per socket and when each arrived."""

    def __init__(self, port: int, n: int) -> None:
        self.selector = selectors.DefaultSelector()
        self.buffers: dict[int, bytearray] = {}
        self.arrivals: list[float] = []
        for k in range(n):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Clean start, keepalive 600 s (the probe's run is shorter), QoS 0.
            sock.sendall(raw_mqtt.connect(f"probe-{k}", keepalive=600))
            sock.sendall(raw_mqtt.subscribe(topics.availability(SHELF, ITEM)))
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
                self.arrivals.extend(
                    now for packet in raw_mqtt.split(buf) if packet.kind == raw_mqtt.PUBLISH
                )


def main(argv: Sequence[str] | None = None) -> int:
    """Publish ``--changes`` availability changes to ``--receivers`` sockets; print the times."""
    parser = argparse.ArgumentParser(prog="python -m bench.fanout_probe", description=__doc__)
    parser.add_argument("--receivers", type=int, default=10000)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between changes")
    args = parser.parse_args(argv)
    raise_fd_limit()
    root = Path(tempfile.mkdtemp(prefix="cs-fanout-"))
    try:
        to_all, first = _play(root, args.receivers, args.changes, args.every)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if not to_all:
        print("no change reached every receiver")
        return 1
    q = statistics.quantiles(to_all, n=100, method="inclusive") if len(to_all) > 1 else to_all * 99
    print(
        f"{args.receivers:,} receivers, {len(to_all)} changes: first copy p50"
        f" {statistics.median(first):.1f} ms; last copy p50 {q[49]:.1f} ms,"
        f" p99 {q[98]:.1f} ms, max {max(to_all):.1f} ms"
    )
    return 0


def _play(root: Path, n: int, changes: int, every: float) -> tuple[list[float], list[float]]:
    """(ms to the last receiver, ms to the first) per change."""
    with LocalBroker(broker_dir(root), extra_config=BROKER_EXTRA) as broker:
        publisher = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="probe-pub", protocol=MQTTProtocolVersion.MQTTv5
        )
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        deadline = time.monotonic() + 30
        while not publisher.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        # After the publisher: paho's own loop thread uses select(), which refuses file
        # descriptors above 1024, so its socket must be opened before the receivers'.
        receivers = Receivers(broker.port, n)
        receivers.pump(time.perf_counter() + 3 + n / 1000)  # CONNACKs, SUBACKs
        receivers.arrivals.clear()
        to_all: list[float] = []
        first: list[float] = []
        for seq in range(1, changes + 1):
            message = Availability(
                item_id=ITEM,
                shelf_id=SHELF,
                name="probe",
                state=AvailabilityState.CHECKED_OUT if seq % 2 else AvailabilityState.AVAILABLE,
                seq=seq,
                changed_at=datetime.now(UTC),
            )
            receivers.arrivals.clear()
            sent = time.perf_counter()
            publisher.publish(topics.availability(SHELF, ITEM), encode(message), qos=0, retain=True)
            receivers.pump(sent + every)
            got = sorted(receivers.arrivals)
            if len(got) < n:
                print(f"change {seq}: only {len(got)} of {n} receivers")
                continue
            first.append((got[0] - sent) * 1000)
            to_all.append((got[-1] - sent) * 1000)
        publisher.loop_stop()
        publisher.disconnect()
    return to_all, first


if __name__ == "__main__":
    sys.exit(main())
