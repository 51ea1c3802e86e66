"""Central's MQTT link: a persistent session on the shared scan stream, with manual acks.

Scans are acknowledged only after their verdict is committed and published, so a central
that dies mid-batch leaves them with the broker, which hands them out again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as paho

from broker import auth, topics
from broker.transport import LoopClient, TlsFiles
from central.republish import Republish, after_connect
from central.settings import MQTT_KEEPALIVE_S, SESSION_EXPIRY_S

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received message, with what it takes to acknowledge it."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received: float = field(default_factory=time.monotonic)
    retain: bool = False  # a retained copy, handed over on subscribe (not news)


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
        session_expiry_s: int = SESSION_EXPIRY_S,
        keepalive_s: int = MQTT_KEEPALIVE_S,
        tls: TlsFiles | None = None,
        control_responses: bool = False,
    ) -> None:
        self._mqtt = LoopClient(
            client_id,
            host,
            port,
            username=username,
            password=password,
            keepalive=keepalive_s,
            session_expiry_s=session_expiry_s,
            manual_ack=True,
            backoff=(0.2, 5.0),
            tls=tls,
        )
        self._keepalive_s = keepalive_s
        self._mqtt.on_up = self._connected
        self._mqtt.on_down = self._disconnected
        self._mqtt.on_message = self._message
        self.connected: asyncio.Event = self._mqtt.up
        # Set by whoever consumes (the service wires the consumer in before start()).
        self.on_inbound: Callable[[Inbound], None] = lambda _message: None
        # The broker's answers to account commands (central/dynsec.py), when asked for.
        self._control_responses = control_responses
        self.on_control: Callable[[bytes], None] = lambda _payload: None
        # Called after every (re)connect with what the broker may lack, to publish it again.
        self.on_connect: Callable[[Republish], None] | None = None
        # Which retained topic was last published when: a snapshot read before a newer
        # publish must not overwrite it (see retained_since).
        self._retained: dict[str, int] = {}
        self._publishes = 0
        # The same, in monotonic seconds: what a broker that restored an older save lacks.
        self._retained_at: dict[str, float] = {}
        self._down_since: float | None = None
        self._connects = 0

    async def run(self) -> None:
        """Stay connected until cancelled."""
        await self._mqtt.run()

    async def close(self) -> None:
        """Leave the shared scan subscription, then disconnect cleanly.

        The session itself outlives us (a kill -9 must not lose queued scans), but a
        stopped instance left in the share group would keep being handed its share of
        scans until the session expires; the kiosks' re-sends would then wait on it.
        """
        await self._mqtt.close(leave=(topics.SCAN_SHARED,))

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        """Queue a publish."""
        if retain:
            self._publishes += 1
            self._retained[topic] = self._publishes
            self._retained_at[topic] = time.monotonic()
        self._mqtt.publish(topic, payload, qos=qos, retain=retain)

    def mark(self) -> int:
        """A point in this link's publishes, for :meth:`retained_since`."""
        return self._publishes

    def retained_since(self, topic: str, mark: int) -> bool:
        """Whether ``topic`` got a retained publish after ``mark`` (so it is newer)."""
        return self._retained.get(topic, 0) > mark

    def ack(self, message: Inbound) -> None:
        """Acknowledge a scan once its verdict is durable and sent."""
        if message.qos > 0:
            self._mqtt.ack(message.mid, message.qos)

    def _connected(self) -> None:
        # Retain as published: a scan a kiosk published with the retain flag then reaches
        # us flagged even live (Mosquitto 2.0.11 honours it on shared subscriptions, and
        # hands a shared subscriber the retained copy on subscribe, flagged), so the
        # consumer can refuse and clear it instead of deciding it at every start.
        self._mqtt.subscribe(topics.SCAN_SHARED, qos=1, retain_as_published=True)
        self._mqtt.subscribe(topics.STATUS_FILTER, qos=1)
        if self._control_responses:
            self._mqtt.subscribe(auth.CONTROL_RESPONSE, qos=1)
        self._connects += 1
        scope = after_connect(
            first=self._connects == 1,
            session_present=self._mqtt.session_present,
            published=self._retained_at,
            down_since=self._down_since,
            keepalive_s=self._keepalive_s,
        )
        log.info(
            "central connected as %s (session present: %s; republishing %s)",
            self._mqtt.client_id,
            self._mqtt.session_present,
            "everything" if scope.everything else f"{len(scope.topics)} retained topics",
        )
        if self.on_connect is not None:
            self.on_connect(scope)

    def _disconnected(self) -> None:
        self._down_since = time.monotonic()
        log.warning("central lost the broker")

    def _message(self, msg: paho.MQTTMessage) -> None:
        if msg.topic == auth.CONTROL_RESPONSE:
            self.on_control(bytes(msg.payload))
            return
        self.on_inbound(
            Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, retain=bool(msg.retain))
        )
