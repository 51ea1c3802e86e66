"""A lean MQTT 5 client for the fleet simulator: one asyncio protocol per kiosk, raw packets.

The simulator must not be what it measures. A paho client costs about 100 µs of Python
per received message (``docs/scaling.md``); ten thousand of them on two shared cores
took seconds to take in one availability change, and tens of seconds to come back after
a broker restart. This client does only what a kiosk does on the wire (a persistent
session with a retained last will, subscriptions, QoS 0/1 publishes, PUBACKs for what it
receives at QoS 1, keep-alive pings) with the packets of ``bench/raw_mqtt.py``, and
reconnects with the same full-jitter backoff as ``broker/transport.py``. Connects are
non-blocking (``loop.create_connection``), so no thread pool is needed in a storm.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import Callable
from typing import cast

from bench import raw_mqtt

# A connect that has no CONNACK within this is given up, and the kiosk backs off. In a
# storm Mosquitto's accept queue (100 deep) overflows; Linux then drops the handshake's
# last ACK, the client believes it is connected, and the broker takes the connection
# only after SYN-ACK retries at 1, 3, 7, 15 s... (measured: 36-139 of 10,000 kiosks
# still waiting 30 s on). paho gives up on the TCP connect after 5 s and pings for a
# CONNACK after a keepalive; 5 s for both keeps the simulator's kiosks like paho's.
CONNECT_TIMEOUT_S = 5.0

# (topic, payload, retained) of one received PUBLISH.
OnMessage = Callable[[str, bytes, bool], None]


class _Wire(asyncio.Protocol):
    """One TCP connection to the broker; hands packets to its client."""

    def __init__(self, client: LeanClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.ready: asyncio.Future[None] = loop.create_future()  # CONNACK, or the end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they are one.
        self.transport = cast("asyncio.Transport", transport)
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.attach(self)

    def data_received(self, data: bytes) -> None:
        if not self.buffer:
            whole = raw_mqtt.one_publish(data)
            if whole is not None:
                self.client.published(self, *whole)
                return
        self.buffer += data
        for packet in raw_mqtt.split(self.buffer):
            self.client.packet(self, packet)

    def connection_lost(self, _exc: Exception | None) -> None:
        for waiter in (self.lost, self.ready):
            if not waiter.done():
                waiter.set_result(None)
        self.client.gone(self)


class LeanClient:
    """A kiosk's MQTT session: connect, stay connected, reconnect with jittered backoff."""

    def __init__(
        self,
        client_id: str,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 10,
        session_expiry_s: int = 3600,
        backoff: tuple[float, float] = (0.5, 8.0),
    ) -> None:
        self.client_id = client_id
        self._host, self._port = host, port
        self._username, self._password = username, password
        self.keepalive = keepalive
        self._expiry = session_expiry_s
        self._backoff = backoff
        self._will: tuple[str, bytes] | None = None
        self._wire: _Wire | None = None
        self._packet_id = 0
        self._topics: dict[str, bytes] = {}  # topic -> its length-prefixed bytes
        self.connect_packet = b""
        self.up = False
        self.session_present = False
        self.connects = 0
        self.last_write = 0.0
        self.on_up: Callable[[], None] | None = None
        self.on_down: Callable[[], None] | None = None
        self.on_message: OnMessage | None = None

    def will_set(self, topic: str, payload: bytes) -> None:
        """A retained QoS 1 last will, sent with every CONNECT."""
        self._will = (topic, payload)

    async def run(self) -> None:
        """Connect, stay connected, reconnect with full-jitter backoff; until cancelled."""
        loop = asyncio.get_running_loop()
        delay = self._backoff[0]
        try:
            while True:
                self.connect_packet = raw_mqtt.connect(
                    self.client_id,
                    username=self._username,
                    password=self._password,
                    keepalive=self.keepalive,
                    clean_start=False,
                    session_expiry_s=self._expiry,
                    will=self._will,
                )
                connects = self.connects
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT_S):
                        _transport, wire = await loop.create_connection(
                            lambda: _Wire(self), self._host, self._port
                        )
                        await wire.ready
                    await wire.lost
                except (OSError, TimeoutError):
                    self.close()
                if self.connects > connects:
                    delay = self._backoff[0]  # it was up: start the backoff again
                # Full jitter, as broker/transport.py: a fleet dropped at once comes back
                # spread out, not in step.
                await asyncio.sleep(random.uniform(0, delay))
                delay = min(delay * 2, self._backoff[1])
        finally:
            self.close()

    def close(self) -> None:
        """Drop the connection (no DISCONNECT: the broker keeps the session and the will)."""
        if self._wire is not None and self._wire.transport is not None:
            self._wire.transport.abort()

    # -- from the wire ----------------------------------------------------------------------

    def attach(self, wire: _Wire) -> None:
        # Here, not after create_connection returns: uvloop may hand over the CONNACK
        # (and on_up's subscriptions must go out on this wire) before that await resumes.
        self._wire = wire
        self._write(wire, self.connect_packet)

    def published(
        self, wire: _Wire, flags: int, topic: bytes, packet_id: bytes, payload: bytes
    ) -> None:
        if packet_id:
            self._write(wire, raw_mqtt.puback(packet_id))
        if self.on_message is not None:
            self.on_message(topic.decode(), payload, bool(flags & 0x01))

    def packet(self, wire: _Wire, packet: raw_mqtt.Packet) -> None:
        if packet.kind == raw_mqtt.PUBLISH:
            (topic, payload), packet_id = raw_mqtt.publish_parts(packet)
            self.published(wire, packet.flags, topic, packet_id, payload)
        elif packet.kind == raw_mqtt.CONNACK:
            reason, _receive_max = raw_mqtt.connack(packet)
            if reason != 0:
                if wire.transport is not None:
                    wire.transport.close()
                return
            self.session_present = raw_mqtt.session_present(packet)
            self.connects += 1
            self.up = True
            if not wire.ready.done():
                wire.ready.set_result(None)
            if self.on_up is not None:
                self.on_up()
        elif packet.kind == raw_mqtt.DISCONNECT and wire.transport is not None:
            wire.transport.close()

    def gone(self, wire: _Wire) -> None:
        if wire is not self._wire:
            return
        self._wire = None
        was_up, self.up = self.up, False
        if was_up and self.on_down is not None:
            self.on_down()

    # -- to the wire ------------------------------------------------------------------------

    def _write(self, wire: _Wire | None, data: bytes) -> bool:
        if wire is None or wire.transport is None or wire.transport.is_closing():
            return False
        try:
            wire.transport.write(data)
        except RuntimeError:
            # uvloop: the connection was reset and its handle closed before connection_lost
            # ran (seen in a reconnect storm, from the pinger); it is gone, not a crash.
            return False
        self.last_write = time.monotonic()
        return True

    def _next_id(self) -> int:
        self._packet_id = self._packet_id % 65_535 + 1
        return self._packet_id

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> bool:
        """Send now if up (the caller's outbox re-sends what was not answered); whether sent."""
        if not self.up:
            return False
        name = self._topics.get(topic)
        if name is None:
            name = self._topics[topic] = raw_mqtt.utf8(topic)
        packet = raw_mqtt.publish(
            name, payload, qos=qos, packet_id=self._next_id() if qos else 0, retain=retain
        )
        return self._write(self._wire, packet)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe (again after a reconnect is the caller's business, in ``on_up``)."""
        self._write(self._wire, raw_mqtt.subscribe(topic, qos=qos, packet_id=self._next_id()))

    def ping_if_idle(self, now: float) -> None:
        """PINGREQ when nothing was sent for a keep-alive, as paho does (a real kiosk's rule);
        the broker waits 1.5 keep-alives before it drops a silent client."""
        if self.up and now - self.last_write >= self.keepalive:
            self._write(self._wire, raw_mqtt.PINGREQ)
