"""Requests to Mosquitto's dynamic security plugin over central's own MQTT connection.

The plugin answers every command batch on one response topic that all administrators
share, so each batch carries a correlation id and waits only for its own answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from broker import auth
from central.errors import CentralError

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]


class BrokerControlError(CentralError, RuntimeError):
    """The broker did not answer a dynamic security command in time."""


class DynsecControl:
    """Sends command batches and matches the plugin's responses to them."""

    def __init__(
        self, publish: Publish, connected: asyncio.Event, *, timeout_s: float = 5.0
    ) -> None:
        self._publish = publish
        self._connected = connected
        self._timeout = timeout_s
        self._waiting: dict[str, asyncio.Future[list[dict[str, Any]]]] = {}

    async def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send ``commands`` as one batch; the responses in order (errors are values)."""
        if not commands:
            return []
        tag = uuid.uuid4().hex
        batch = [{**c, "correlationData": f"{tag}:{n}"} for n, c in enumerate(commands)]
        answer: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._waiting[tag] = answer
        try:
            async with asyncio.timeout(self._timeout):
                await self._connected.wait()
                self._publish(auth.CONTROL, json.dumps({"commands": batch}).encode())
                return await answer
        except TimeoutError:
            raise BrokerControlError(
                f"the broker did not answer {[c['command'] for c in commands]}"
            ) from None
        finally:
            self._waiting.pop(tag, None)

    def feed(self, payload: bytes) -> None:
        """One message from the response topic (called on the event loop)."""
        try:
            responses = json.loads(payload)["responses"]
            tag = str(responses[0]["correlationData"]).split(":")[0]
        except (ValueError, KeyError, IndexError, TypeError):
            # Another administrator's batch without correlation data, or junk: not ours.
            return
        answer = self._waiting.get(tag)
        if answer is not None and not answer.done():
            answer.set_result(list(responses))
