"""A test-side MQTT client that publishes raw payloads and collects what comes back."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion


@dataclass(frozen=True)
class Received:
    """One message the probe saw."""

    topic: str
    payload: bytes
    retain: bool


class Probe:
    """A plain paho client for tests: subscribe, publish, wait for messages."""

    def __init__(
        self,
        port: int,
        client_id: str = "probe",
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.inbox: queue.Queue[Received] = queue.Queue()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_message = lambda _c, _u, m: self.inbox.put(
            Received(m.topic, bytes(m.payload), bool(m.retain))
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 and wait for the broker to confirm."""
        result, _mid = self.client.subscribe(topic, qos=1)
        assert result == paho.MQTT_ERR_SUCCESS, result
        time.sleep(0.05)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 and wait until the broker has it."""
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def next(self, timeout: float = 5.0, *, topic_suffix: str = "") -> Received:
        """The next message (whose topic ends with ``topic_suffix``) within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message ending {topic_suffix!r} in {timeout}s")
            try:
                message = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if message.topic.endswith(topic_suffix):
                return message

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()
