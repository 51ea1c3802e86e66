"""One paho-mqtt client driven by the asyncio event loop: no network thread, reconnects itself.

paho does the MQTT; this module only wires its socket into the running loop (add_reader /
add_writer, the pattern of paho's own ``loop_asyncio`` example) and keeps the connection
up with jittered exponential backoff. Every paho callback therefore runs on the event
loop, so callers need no locks and no ``call_soon_threadsafe``; a central or a fleet
simulator can hold thousands of connections in one thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt import __version__ as paho_version
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)


def nodelay(sock: Any) -> None:
    """Turn off Nagle's algorithm: paho leaves it on, and a small verdict then waits for
    the peer's delayed ACK (40 ms on Linux) before it leaves the machine."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# What one read from the socket asks for: many packets' worth, where paho asks per field.
_READ_CHUNK = 65536
# How much one write gathers from paho's queue of packets.
_WRITE_CHUNK = 65536


# One condition for every message record the link makes: paho makes one per message, and
# nothing here waits on them (is_published polls; wait_for_publish is woken for all).
_SENT = threading.Condition()


class _SentInfo(paho.MQTTMessageInfo):
    """paho's record of one publish, without a Condition of its own."""

    __slots__ = ()

    def __init__(self, mid: int) -> None:
        self.mid = mid
        self._published = False
        self._condition = _SENT
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self._iterpos = 0

    def _set_as_published(self) -> None:
        with self._condition:
            self._published = True
            self._condition.notify_all()  # shared: wake every waiter to look again


# The properties of every PUBLISH that carries none (nothing here changes them).
_NO_PROPERTIES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]


# The chunked client below reaches into paho's internals (its packet reader and writer,
# PUBLISH and PUBACK handling, publish): it runs only on the paho release it was built
# and tested on, which requirements/*.lock pin; any other gets paho's own client, slower
# but right, rather than a link that fails on a renamed attribute.
PAHO_TESTED = paho_version.startswith("2.2.")


class _PlainClient(paho.Client):
    """paho's own client, with the two questions the loop asks of the chunked one."""

    def buffered(self) -> bool:
        """paho reads each packet straight from the socket: nothing waits in a buffer."""
        return False

    def forget_buffer(self) -> None:
        """Nothing to drop."""


class _BufferedClient(paho.Client):
    """paho's client, reading and writing the socket in large chunks.

    paho reads each packet with three or four ``recv`` calls (its command byte, each byte
    of its length, its body) and writes each with its own ``send``: on central's scan
    stream that is about nine system calls, each a release and re-take of the GIL, per
    scan decided. Here one ``recv`` fills a buffer that those small reads are served from,
    and one ``send`` carries many queued packets. What the buffer still holds when paho
    stops reading, the socket will not signal again: :meth:`buffered` tells the loop.
    """

    _rbuf = b""
    _rpos = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(_READ_CHUNK)  # BlockingIOError when nothing came
            if len(data) <= bufsize:
                return data
            self._rbuf, self._rpos = data, 0
        start = self._rpos
        self._rpos = start + bufsize
        return self._rbuf[start : self._rpos]

    def _packet_read(self) -> MQTTErrorCode:
        """paho's reader, less its byte-at-a-time framing when a whole packet is buffered.

        paho frames each packet with a call per byte of its header and a dict update per
        step; central reads two packets per scan. A packet that lies whole in the buffer,
        none begun, is framed here in one pass and handed to paho's own handler; a split
        one, or a length paho would refuse, goes paho's way.
        """
        buf, start = self._rbuf, self._rpos
        if self._in_packet["command"] != 0 or len(buf) - start < 2:
            return super()._packet_read()
        length, shift, at = 0, 0, start + 1
        while True:
            if at >= len(buf) or shift > 21:  # split, or over the four length bytes
                return super()._packet_read()
            byte = buf[at]
            length |= (byte & 0x7F) << shift
            shift += 7
            at += 1
            if not byte & 0x80:
                break
        end = at + length
        if end > len(buf):
            return super()._packet_read()
        self._rpos = end
        self._in_packet = {
            "command": buf[start],
            "have_remaining": 1,
            "remaining_count": list(buf[start + 1 : at]),
            "remaining_mult": 1 << shift,
            "remaining_length": length,
            "packet": bytearray(buf[at:end]),
            "to_process": 0,
            "pos": 0,
        }
        try:
            rc = self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(paho.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = {
            "command": 0,
            "have_remaining": 0,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": 0,
            "packet": bytearray(b""),
            "to_process": 0,
            "pos": 0,
        }
        with self._msgtime_mutex:
            self._last_bytes_received = paho.time_func()
        return rc

    def _packet_write(self) -> MQTTErrorCode:
        queue = self._out_packet
        while queue:
            if not self._plain(queue[0]):
                return super()._packet_write()  # paho's own path, one packet at a time
            taken: list[Any] = []
            parts: list[bytes | bytearray] = []
            size = 0
            for packet in queue:
                if size >= _WRITE_CHUNK or not self._plain(packet):
                    break
                part = packet["packet"][packet["pos"] :]
                taken.append(packet)
                parts.append(part)
                size += len(part)
            try:
                sent = self._sock_send(b"".join(parts))
            except (AttributeError, ValueError):
                return MQTTErrorCode.MQTT_ERR_SUCCESS  # the socket is gone, as paho treats it
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError as exc:
                log.info("sending to the broker failed: %s", exc)
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            # Account for what went out packet by packet, as paho would have.
            for packet in taken:
                done = min(sent, packet["to_process"])
                packet["to_process"] -= done
                packet["pos"] += done
                sent -= done
                if packet["to_process"] > 0:
                    break  # the rest of it goes on the next write
                queue.popleft()
                if packet["command"] & 0xF0 == paho.PUBLISH and packet["qos"] == 0:
                    packet["info"]._set_as_published()
            with self._msgtime_mutex:
                self._last_msg_out = paho.time_func()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _plain(self, packet: Any) -> bool:
        """Whether sending ``packet`` has no effect beyond its bytes and its message's
        published mark (a disconnect closes the socket, a QoS 0 publish may call back)."""
        command = packet["command"] & 0xF0
        if command == paho.DISCONNECT:
            return False
        return not (command == paho.PUBLISH and packet["qos"] == 0 and self.on_publish)

    # -- the two packets of every scan, decoded without paho's general machinery ------------
    # paho builds a Properties object (two dicts, then a clear over 27 names) for each
    # PUBLISH and PUBACK of MQTT 5, and walks its topic matcher for each message: about a
    # fifth of central's event loop. Packets with properties, QoS 2 and MQTT 3 go the
    # general way.

    _filtered = False  # whether a per-topic callback was ever added (paho's matcher)

    def message_callback_add(self, sub: str, callback: paho.CallbackOnMessage) -> None:
        self._filtered = True
        super().message_callback_add(sub, callback)

    def _handle_publish(self) -> MQTTErrorCode:
        header = self._in_packet["command"]
        packet = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        if self._protocol != paho.MQTTv5 or qos > 1:
            return super()._handle_publish()
        topic_end = 2 + int.from_bytes(packet[:2], "big")
        pos = topic_end
        mid = 0
        if qos:
            mid = int.from_bytes(packet[pos : pos + 2], "big")
            pos += 2
        if pos >= len(packet) or packet[pos] != 0:
            return super()._handle_publish()  # properties to read, or a short packet
        message = paho.MQTTMessage(mid, bytes(packet[2:topic_end]))
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.properties = _NO_PROPERTIES
        message.payload = bytes(packet[pos + 1 :])
        message.timestamp = paho.time_func()
        self._handle_on_message(message)
        if qos and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        on_message = self.on_message
        if self._filtered or on_message is None:
            super()._handle_on_message(message)
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as exc:
                self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_message: %s", exc)
                if not self.suppress_exceptions:
                    raise

    def _handle_pubackcomp(self, cmd: Literal["PUBACK", "PUBCOMP"]) -> MQTTErrorCode:
        packet = self._in_packet["packet"]
        if cmd != "PUBACK" or len(packet) != 2 or self.on_publish is not None:
            return super()._handle_pubackcomp(cmd)  # a reason code, properties or a callback
        with self._out_message_mutex:
            message = self._out_messages.pop(int.from_bytes(packet, "big"), None)
            if message is None:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            message.info._set_as_published()
            if message.qos > 0:
                # paho walks every message in flight looking for a queued one on each
                # PUBACK (a thousand at central's window). One is queued only while the
                # window is full: every path that queues fills it, and this walk refills
                # it. So walk only when this ack freed a slot of a full window.
                full = 0 < self._max_inflight_messages <= self._inflight_messages
                self._inflight_messages -= 1
                if full:
                    return self._update_inflight()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- publishing: paho's path less a threading.Condition per message ----------------------

    def publish(
        self,
        topic: str,
        payload: paho.PayloadType = None,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> paho.MQTTMessageInfo:
        """paho's ``publish`` for bytes without properties at QoS 0 or 1, as paho does it,
        with a message record that shares one condition (paho builds a Condition and an
        RLock per message: a tenth of central's event loop); anything else goes paho's way."""
        if properties is not None or qos not in (0, 1) or type(payload) is not bytes:
            return super().publish(topic, payload, qos, retain, properties)
        topic_bytes = topic.encode("utf-8")
        self._raise_for_invalid_topic(topic_bytes)
        mid = self._mid_generate()
        info = _SentInfo(mid)
        if qos == 0:
            info.rc = self._send_publish(mid, topic_bytes, payload, 0, retain, False, info)
            return info
        message = paho.MQTTMessage.__new__(paho.MQTTMessage)
        message.timestamp = paho.time_func()
        message.state = paho.mqtt_ms_invalid
        message.dup = False
        message.mid = mid
        message._topic = topic_bytes
        message.payload = payload
        message.qos = qos
        message.retain = retain
        message.info = info
        message.properties = None
        with self._out_message_mutex:
            queued = len(self._out_messages)
            if (0 < self._max_queued_messages <= queued) or mid in self._out_messages:
                info.rc = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
                return info
            self._out_messages[mid] = message
            inflight = self._max_inflight_messages
            if inflight == 0 or self._inflight_messages < inflight:
                self._inflight_messages += 1
                message.state = paho.mqtt_ms_wait_for_puback
                rc = self._send_publish(mid, topic_bytes, payload, qos, retain, False, info)
                if rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                    # Not in flight: sent when a connection is made.
                    self._inflight_messages -= 1
                    message.state = paho.mqtt_ms_publish
                info.rc = rc
                return info
            message.state = paho.mqtt_ms_queued
            info.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
            return info

    def buffered(self) -> bool:
        """Whether bytes already read from the socket wait to be handled."""
        return self._rpos < len(self._rbuf)

    def forget_buffer(self) -> None:
        """Drop what a closed connection left unread (a new one starts clean)."""
        self._rbuf, self._rpos = b"", 0


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """TLS to the broker: the project CA that signed it, and an optional client certificate."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None


class LoopClient:
    """A persistent-session MQTT 5 client that lives on the current event loop."""

    def __init__(
        self,
        client_id: str,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 15,
        session_expiry_s: int = 3600,
        manual_ack: bool = False,
        backoff: tuple[float, float] = (0.5, 10.0),
        connect_in_thread: bool = True,
        tls: TlsFiles | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.client_id = client_id
        self._host, self._port, self._keepalive = host, port, keepalive
        self._expiry = session_expiry_s
        self._backoff = backoff
        self._connect_in_thread = connect_in_thread
        # The raw paho client, for this module only: callers use the methods below
        # (publish, subscribe, unsubscribe, ack, will_set, close).
        kind = _BufferedClient if PAHO_TESTED else _PlainClient
        self.client: _BufferedClient | _PlainClient = kind(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=manual_ack,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            # Verifies the broker's certificate and host name against the project CA only.
            self.client.tls_set(
                ca_certs=str(tls.ca),
                certfile=str(tls.cert) if tls.cert else None,
                keyfile=str(tls.key) if tls.key else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_socket_open = self._socket_open
        self.client.on_socket_close = self._socket_close
        self.client.on_socket_register_write = self._want_write
        self.client.on_socket_unregister_write = self._written
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_message = self._message
        self.up = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost.set()
        self.on_up: Callable[[], None] | None = None
        self.on_down: Callable[[], None] | None = None
        self.on_message: Callable[[paho.MQTTMessage], None] | None = None
        self.connects = 0
        # Whether the broker still had our session at the last CONNACK (MQTT 5 3.2.2.1.1).
        self.session_present = False

    # -- socket plumbing (paho calls these; connect may call them from a worker thread) ----

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _socket_open(self, _c: paho.Client, _u: object, sock: Any) -> None:
        nodelay(sock)
        self.client.forget_buffer()
        self._on_loop(self._loop.add_reader, sock, self._read)

    def _socket_close(self, _c: paho.Client, _u: object, sock: Any) -> None:
        def close() -> None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
            self._mark_lost()

        self._on_loop(close)

    def _want_write(self, _c: paho.Client, _u: object, sock: Any) -> None:
        self._on_loop(self._loop.add_writer, sock, self._write)

    def _written(self, _c: paho.Client, _u: object, sock: Any) -> None:
        self._on_loop(self._loop.remove_writer, sock)

    def _read(self) -> None:
        self.client.loop_read(max_packets=64)
        # Bytes already read (into the client's buffer, or decrypted by TLS) will never
        # make the socket signal again: come back for them after the loop's other work.
        sock = self.client.socket()
        if sock is not None and (
            self.client.buffered() or (isinstance(sock, ssl.SSLSocket) and sock.pending())
        ):
            self._loop.call_soon(self._read)

    def _write(self) -> None:
        self.client.loop_write()

    # -- MQTT callbacks, all on the loop ----------------------------------------------------

    def _connected(
        self,
        _c: paho.Client,
        _u: object,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        _p: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused %s: %s", self.client_id, reason)
            return
        self.session_present = flags.session_present
        self.connects += 1
        self.up.set()
        if self.on_up is not None:
            self.on_up()

    def _disconnected(
        self, _c: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: Properties | None
    ) -> None:
        self._mark_lost()

    def _mark_lost(self) -> None:
        was_up = self.up.is_set()
        self.up.clear()
        self._lost.set()
        if was_up and self.on_down is not None:
            self.on_down()

    def _message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        if self.on_message is not None:
            self.on_message(message)

    # -- running ----------------------------------------------------------------------------

    def will_set(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = True) -> None:
        """What the broker publishes for us if we vanish."""
        self.client.will_set(topic, payload, qos=qos, retain=retain)

    async def run(self) -> None:
        """Connect, stay connected, reconnect with jittered backoff; until cancelled."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._expiry
        self.client.connect_async(
            self._host, self._port, keepalive=self._keepalive, clean_start=False, properties=props
        )
        keepalive = asyncio.create_task(self._misc(), name="mqtt-keepalive")
        delay = self._backoff[0]
        try:
            while True:
                self._lost.clear()
                try:
                    if self._connect_in_thread:
                        # A TCP connect to an unreachable host blocks for seconds: keep
                        # it off the loop so LEDs and timers go on.
                        rc = await asyncio.to_thread(self.client.reconnect)
                    else:
                        rc = self.client.reconnect()
                except OSError as exc:
                    log.info("broker %s:%s unreachable: %s", self._host, self._port, exc)
                    rc = MQTTErrorCode.MQTT_ERR_NO_CONN
                if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    await self._lost.wait()
                    if self.connects:
                        delay = self._backoff[0]
                else:
                    self._lost.set()
                # Full jitter: a fleet dropped at once comes back spread out, not in step.
                await asyncio.sleep(random.uniform(0, delay))  # noqa: S311
                delay = min(delay * 2, self._backoff[1])
        finally:
            keepalive.cancel()

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.client.loop_misc()

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> paho.MQTTMessageInfo:
        """Queue a publish; paho sends it when the socket is writable."""
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def subscribe(self, topic: str, qos: int = 1, *, retain_as_published: bool = False) -> None:
        """Subscribe (again after a reconnect is the caller's business, in ``on_up``);
        ``retain_as_published``: messages published retained arrive flagged, even live."""
        self.client.subscribe(
            topic, options=SubscribeOptions(qos=qos, retainAsPublished=retain_as_published)
        )

    def unsubscribe(self, topic: str) -> None:
        """Leave a subscription (a kiosk moved to another shelf)."""
        self.client.unsubscribe(topic)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a message received with ``manual_ack``, once it is safely handled."""
        self.client.ack(mid, qos)

    async def close(
        self,
        farewell: tuple[str, bytes] | None = None,
        within: float = 2.0,
        leave: tuple[str, ...] = (),
    ) -> None:
        """Optionally leave subscriptions and publish a retained farewell, then disconnect."""
        if self.up.is_set():
            for topic in leave:
                # Sent before DISCONNECT on the same connection, so the broker applies it
                # first: no wait for the UNSUBACK is needed.
                self.unsubscribe(topic)
            if farewell is not None:
                info = self.publish(*farewell, qos=1, retain=True)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(within):
                        while not info.is_published():  # noqa: ASYNC110 - paho has no event
                            await asyncio.sleep(0.01)
            self.client.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._lost.wait()
        sock = self.client.socket()
        if sock is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
