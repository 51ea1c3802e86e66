"""The kiosk's MQTT link: presence with a last will, its own topics in, scans out at QoS 1.

The connection runs on the kiosk's event loop (broker.transport); it reconnects with
jittered backoff by itself, and the kiosk re-sends its outbox on every connect. Every
message that comes in is routed by the contract (``broker.topics.route``) before the
kiosk sees it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

import paho.mqtt.client as paho

from broker import topics
from broker.messages import KioskState, KioskStatus, UpdateProgress, encode
from broker.topics import (
    AvailabilityRoute,
    BadTopic,
    CommandRoute,
    ConfigRoute,
    KioskRoute,
    TopicRefusal,
    VerdictRoute,
)
from broker.transport import LoopClient, TlsFiles

log = logging.getLogger(__name__)

# Availability is retained state with a seq, not an event: a missed copy is replaced by
# the retained one on the next connect's SUBSCRIBE, so QoS 0 is enough. At QoS 1 the
# broker would queue a copy per change for every kiosk that is away, and hand it over on
# top of the retained one in a reconnect storm.
AVAILABILITY_QOS = 0

# The routes a kiosk reads; everything else is dropped by the link.
Inbound = VerdictRoute | ConfigRoute | CommandRoute | AvailabilityRoute
_INBOUND = (VerdictRoute, ConfigRoute, CommandRoute, AvailabilityRoute)


class Unread(StrEnum):
    """Why a topic inside the contract is still not one for this kiosk."""

    OTHER_KIOSK = "other_kiosk"  # another kiosk's verdict, config or command
    NOT_READ = "not_read"  # scans, statuses, alerts: kiosks never read them


class KioskLink:
    """One kiosk's connection."""

    def __init__(
        self,
        kiosk_id: str,
        host: str,
        port: int,
        *,
        software_version: str,
        username: str | None = None,
        password: str | None = None,
        on_message: Callable[[Inbound, bytes], None],
        on_connection: Callable[[bool], None],
        session_expiry_s: int = 3600,
        tls: TlsFiles | None = None,
    ) -> None:
        self.kiosk_id = kiosk_id
        self._version = software_version
        self._on_message = on_message
        self._on_connection = on_connection
        self._shelf: str | None = None
        # Topics not for this kiosk, by reason: counted, never handled.
        self.refused_topics: Counter[TopicRefusal | Unread] = Counter()
        # Keep our session (and verdicts sent while we blinked) across short drops.
        self._mqtt = LoopClient(
            f"kiosk-{kiosk_id}",
            host,
            port,
            username=username,
            password=password,
            keepalive=10,
            session_expiry_s=session_expiry_s,
            backoff=(0.5, 8.0),
            tls=tls,
        )
        self._mqtt.on_up = self._connected
        self._mqtt.on_down = self._disconnected
        self._mqtt.on_message = self._message

    @property
    def online(self) -> bool:
        """Whether the broker connection is up."""
        return self._mqtt.up.is_set()

    @property
    def session_present(self) -> bool:
        """Whether the broker still had our session (and subscriptions) at the last connect."""
        return self._mqtt.session_present

    def status(
        self,
        state: KioskState,
        at: datetime,
        *,
        config_version: int = 0,
        outbox_depth: int = 0,
        camera_ok: bool = True,
        camera_fps: float | None = None,
        decode_ms: float | None = None,
        config_problem: str | None = None,
        frame_errors: int = 0,
        frame_error: str | None = None,
        update: UpdateProgress | None = None,
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
                camera_fps=camera_fps,
                decode_ms=decode_ms,
                config_problem=config_problem,
                frame_errors=frame_errors or None,
                frame_error=frame_error,
                update=update,
            )
        )

    async def run(self, last_will: bytes) -> None:
        """Stay connected until cancelled; the broker publishes ``last_will`` if we vanish."""
        self._mqtt.will_set(topics.status(self.kiosk_id), last_will, qos=1, retain=True)
        await self._mqtt.run()

    def follow_shelf(self, shelf_id: str) -> None:
        """Subscribe to the availability of every item on ``shelf_id``."""
        if shelf_id == self._shelf:
            return
        if self._shelf is not None:
            self._mqtt.unsubscribe(topics.shelf_availability(self._shelf))
        self._shelf = shelf_id
        self._mqtt.subscribe(topics.shelf_availability(shelf_id), qos=AVAILABILITY_QOS)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Queue a QoS 1 publish."""
        self._mqtt.publish(topic, payload, qos=1, retain=retain)

    async def close(self, farewell: bytes | None = None) -> None:
        """Say ``farewell`` (retained status) and disconnect cleanly."""
        await self._mqtt.close(
            None if farewell is None else (topics.status(self.kiosk_id), farewell)
        )

    def _connected(self) -> None:
        for topic in (
            topics.verdict(self.kiosk_id),
            topics.config(self.kiosk_id),
            topics.command(self.kiosk_id),
        ):
            self._mqtt.subscribe(topic, qos=1)
        if self._shelf is not None:
            # Again on every connect, even when the broker kept our session: a change
            # published while we were away was not queued for us (QoS 0), and only a
            # SUBSCRIBE makes the broker hand over the retained current state.
            self._mqtt.subscribe(topics.shelf_availability(self._shelf), qos=AVAILABILITY_QOS)
        self._on_connection(True)

    def _disconnected(self) -> None:
        log.warning("kiosk %s lost the broker", self.kiosk_id)
        self._on_connection(False)

    def _message(self, msg: paho.MQTTMessage) -> None:
        self.deliver(msg.topic, bytes(msg.payload))

    def deliver(self, topic: str, payload: bytes) -> None:
        """Route one incoming message by the contract and hand it on; count what has no route."""
        parsed = topics.route(topic)
        if isinstance(parsed, BadTopic):
            self._refuse(parsed.reason)
        elif not isinstance(parsed, _INBOUND):
            self._refuse(Unread.NOT_READ)
        elif isinstance(parsed, KioskRoute) and parsed.kiosk_id != self.kiosk_id:
            self._refuse(Unread.OTHER_KIOSK)
        else:
            self._on_message(parsed, payload)

    def _refuse(self, reason: TopicRefusal | Unread) -> None:
        self.refused_topics[reason] += 1
        if self.refused_topics[reason] == 1:  # once per reason, not per message
            log.warning("ignored messages on topics not for this kiosk: %s", reason)
