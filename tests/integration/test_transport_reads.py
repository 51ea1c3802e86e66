"""The MQTT link reads the socket in large chunks: every message still arrives whole, in order."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from broker.local import LocalBroker
from broker.messages import MAX_PAYLOAD_BYTES
from broker.transport import LoopClient

TOPIC = "cs/test/reads"


async def test_a_burst_of_mixed_sizes_arrives_whole_and_in_order(broker: LocalBroker) -> None:
    # Many packets to one read, of sizes up to the broker's limit: the reads' seams fall
    # inside headers and bodies alike, and a burst larger than paho handles per wake-up
    # leaves bytes in the buffer that the socket will not signal again.
    sizes = [(n * 7919) % MAX_PAYLOAD_BYTES for n in range(2_000)]
    payloads = [f"{n:06d}".encode() + bytes([n % 251]) * size for n, size in enumerate(sizes)]
    got: list[bytes] = []
    every = asyncio.Event()

    def on_message(message: paho.MQTTMessage) -> None:
        got.append(bytes(message.payload))
        if len(got) == len(payloads):
            every.set()

    link = LoopClient(f"reads-{uuid.uuid4().hex[:6]}", "127.0.0.1", broker.port)
    link.on_message = on_message
    link.on_up = lambda: link.subscribe(TOPIC, qos=1)
    running = asyncio.create_task(link.run())
    sender = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    sender.max_inflight_messages_set(0)
    sender.max_queued_messages_set(0)
    try:
        async with asyncio.timeout(10):
            await link.up.wait()
        await asyncio.sleep(0.2)  # the SUBACK: the subscription is in place
        sender.connect("127.0.0.1", broker.port)
        sender.loop_start()
        for payload in payloads:
            sender.publish(TOPIC, payload, qos=1)
        # In time, too: bytes left in the buffer would otherwise wait for the next packet
        # or the keepalive to make the socket readable again.
        async with asyncio.timeout(5):
            await every.wait()
    finally:
        sender.disconnect()
        sender.loop_stop()
        await link.close()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert got == payloads
