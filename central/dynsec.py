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
from broker.messages import MAX_PAYLOAD_BYTES
from central.errors import CentralError

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]

# The broker drops any client whose packet exceeds max_packet_size, central included.
_BATCH_BYTES = MAX_PAYLOAD_BYTES - 64
_PER_COMMAND = len(', "correlationData": ""') + 32 + 8


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
        """Send ``commands`` in batches that fit the broker's packet limit, one after the
        other; the responses in order (errors are values)."""
        responses: list[dict[str, Any]] = []
        batch: list[dict[str, Any]] = []
        size = 0
        for command in commands:
            # Room for the envelope and the correlation id each command gets.
            cost = len(json.dumps(command)) + _PER_COMMAND
            if batch and size + cost > _BATCH_BYTES:
                responses += await self._batch(batch)
                batch, size = [], 0
            batch.append(command)
            size += cost
        if batch:
            responses += await self._batch(batch)
        return responses

    async def _batch(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
