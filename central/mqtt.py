"""Central's MQTT link (paho-mqtt 2, MQTT 5): a persistent session, manual acks.

paho runs its network loop on its own thread; received messages cross into asyncio with
``call_soon_threadsafe``. Scans are acknowledged only after their verdict is committed and
published, so a central that dies mid-batch leaves them with the broker for redelivery.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broker import topics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received message, with what it takes to acknowledge it."""

    topic: str
    payload: bytes
    mid: int
    qos: int


class CentralLink:
    """Connects to the broker as one central instance and shares the scan stream."""

    def __init__(
        self,
        client_id: str,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        session_expiry_s: int = 3600,
    ) -> None:
        self._host, self._port = host, port
        self._expiry = session_expiry_s
        # Set by whoever consumes (the service wires the consumer in before start()).
        self.on_inbound: Callable[[Inbound], None] = lambda _message: None
        self._pending: deque[Inbound] = deque()
        self._pending_lock = threading.Lock()
        self._drain_scheduled = False
        self.connected = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_message = self._message

    def start(self) -> None:
        """Connect and start paho's network thread (it reconnects by itself)."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho lacks hints here
        # A persistent session: the broker keeps central's unacked scans while it is away.
        props.SessionExpiryInterval = self._expiry
        self._client.connect_async(
            self._host, self._port, keepalive=15, clean_start=False, properties=props
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect cleanly and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        """Queue a publish (thread-safe; paho sends it from its own thread)."""
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def ack(self, message: Inbound) -> None:
        """Acknowledge a scan once its verdict is durable and sent."""
        if message.qos > 0:
            self._client.ack(message.mid, message.qos)

    def _connected(
        self,
        client: paho.Client,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused central: %s", reason)
            return
        client.subscribe(topics.SCAN_SHARED, qos=1)
        client.subscribe(topics.STATUS_FILTER, qos=1)
        log.info("central connected to %s:%s", self._host, self._port)
        self._loop.call_soon_threadsafe(self.connected.set)

    def _disconnected(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        log.warning("central lost the broker: %s", reason)
        self._loop.call_soon_threadsafe(self.connected.clear)

    def _message(self, _client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        inbound = Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos)
        # Wake the event loop once per burst, not once per message: each wake-up is a
        # write to the loop's self-pipe and a GIL hand-over, and scans come in bursts.
        with self._pending_lock:
            self._pending.append(inbound)
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._pending_lock:
            burst = list(self._pending)
            self._pending.clear()
            self._drain_scheduled = False
        for inbound in burst:
            self.on_inbound(inbound)
