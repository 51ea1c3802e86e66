"""Where central's parts send messages: the publish and ack a broker link offers."""

from __future__ import annotations

from typing import Protocol

from central.mqtt import Inbound


class Publisher(Protocol):
    """Where the consumer sends verdicts and retained state (the MQTT link in service)."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        """Send one message."""

    def ack(self, message: Inbound) -> None:
        """Acknowledge one inbound message."""
