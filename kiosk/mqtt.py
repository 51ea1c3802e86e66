"""The kiosk's MQTT link (paho-mqtt 2, MQTT 5): presence with a last will, QoS 1 both ways.

paho's network thread calls back into asyncio with ``call_soon_threadsafe``; paho itself
reconnects with a growing delay, and the service re-sends its outbox on every connect.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broker import topics
from broker.messages import KioskState, KioskStatus, encode

log = logging.getLogger(__name__)


class KioskLink:
    """One kiosk's connection: its own topics in, scans and presence out."""

    def __init__(
        self,
        kiosk_id: str,
        host: str,
        port: int,
        *,
        software_version: str,
        username: str | None = None,
        password: str | None = None,
        on_message: Callable[[str, bytes], None],
        on_connection: Callable[[bool], None],
        session_expiry_s: int = 3600,
    ) -> None:
        self.kiosk_id = kiosk_id
        self._host, self._port = host, port
        self._version = software_version
        self._expiry = session_expiry_s
        self._on_message = on_message
        self._on_connection = on_connection
        self._loop = asyncio.get_running_loop()
        self._shelf: str | None = None
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"kiosk-{kiosk_id}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        # Jitter the reconnect ceiling so a fleet dropped at once does not return in step.
        self._client.reconnect_delay_set(min_delay=1, max_delay=8 + random.randint(0, 4))  # noqa: S311
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_message = self._message

    def status(
        self,
        state: KioskState,
        at: datetime,
        *,
        config_version: int = 0,
        outbox_depth: int = 0,
        camera_ok: bool = True,
    ) -> bytes:
        """A presence payload for this kiosk."""
        return encode(
            KioskStatus(
                kiosk_id=self.kiosk_id,
                state=state,
                software_version=self._version,
                config_version=config_version,
                outbox_depth=outbox_depth,
                camera_ok=camera_ok,
                at=at,
            )
        )

    def start(self, last_will: bytes) -> None:
        """Connect in the background; the broker publishes ``last_will`` if we vanish."""
        self._client.will_set(topics.status(self.kiosk_id), last_will, qos=1, retain=True)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho lacks hints here
        # Keep our session (and verdicts sent while we blinked) across short drops.
        props.SessionExpiryInterval = self._expiry
        self._client.connect_async(
            self._host, self._port, keepalive=10, clean_start=False, properties=props
        )
        self._client.loop_start()

    def follow_shelf(self, shelf_id: str) -> None:
        """Subscribe to the availability of every item on ``shelf_id``."""
        if shelf_id == self._shelf:
            return
        if self._shelf is not None:
            self._client.unsubscribe(topics.shelf_availability(self._shelf))
        self._shelf = shelf_id
        self._client.subscribe(topics.shelf_availability(shelf_id), qos=1)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Queue a QoS 1 publish (thread-safe)."""
        self._client.publish(topic, payload, qos=1, retain=retain)

    def stop(self, farewell: bytes | None = None) -> None:
        """Say ``farewell`` (retained status) and disconnect cleanly."""
        if farewell is not None and self._client.is_connected():
            info = self._client.publish(topics.status(self.kiosk_id), farewell, qos=1, retain=True)
            info.wait_for_publish(2)
        self._client.disconnect()
        self._client.loop_stop()

    def _connected(
        self, client: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused kiosk %s: %s", self.kiosk_id, reason)
            return
        for topic in (
            topics.verdict(self.kiosk_id),
            topics.config(self.kiosk_id),
            topics.command(self.kiosk_id),
        ):
            client.subscribe(topic, qos=1)
        if self._shelf is not None:
            client.subscribe(topics.shelf_availability(self._shelf), qos=1)
        self._loop.call_soon_threadsafe(self._on_connection, True)

    def _disconnected(
        self, _c: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: Properties | None
    ) -> None:
        log.warning("kiosk %s lost the broker: %s", self.kiosk_id, reason)
        self._loop.call_soon_threadsafe(self._on_connection, False)

    def _message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        self._loop.call_soon_threadsafe(self._on_message, msg.topic, bytes(msg.payload))
