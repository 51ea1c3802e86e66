"""The MQTT link reads and writes the socket in large chunks: every message still arrives
whole, in order, and in time."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
from collections.abc import AsyncIterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker import transport
from broker.local import LocalBroker
from broker.messages import MAX_PAYLOAD_BYTES
from broker.transport import LoopClient

TOPIC = "cs/test/chunks"
QUICK = "cs/test/chunks-qos0"
# Sizes up to the broker's limit, many messages to one read or write: the seams fall
# inside headers and bodies alike, and a burst outgrows both paho's packets per wake-up
# and the socket's buffer.
PAYLOADS = [
    f"{n:06d}".encode() + bytes([n % 251]) * ((n * 7919) % (MAX_PAYLOAD_BYTES - 6))
    for n in range(2_000)
]


@pytest.fixture(params=["chunked", "paho"])
def link_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    # Each burst runs through the chunked client and through paho's own, the one a paho
    # release other than the pinned one gets (transport.PAHO_TESTED).
    if request.param == "paho":
        monkeypatch.setattr(transport, "PAHO_TESTED", False)
    return str(request.param)


@contextlib.asynccontextmanager
async def running_link(broker: LocalBroker, link: LoopClient) -> AsyncIterator[LoopClient]:
    running = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(10):
            await link.up.wait()
        yield link
    finally:
        await link.close()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


def plain_client(broker: LocalBroker) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", broker.port)
    return client


def receiving(
    broker: LocalBroker, topic: str, count: int
) -> tuple[paho.Client, list[bytes], threading.Event]:
    """A paho client on its own thread taking ``topic`` in: what it got, and an event set
    once ``count`` messages are in."""
    got: list[bytes] = []
    every = threading.Event()

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        got.append(bytes(message.payload))
        if len(got) == count:
            every.set()

    receiver = plain_client(broker)
    receiver.on_message = on_message
    receiver.subscribe(topic, qos=1)
    receiver.loop_start()
    return receiver, got, every


async def test_a_burst_in_arrives_whole_in_order_and_in_time(
    broker: LocalBroker, link_kind: str
) -> None:
    got: list[tuple[bytes, int, list[tuple[str, str]]]] = []
    every = asyncio.Event()

    def on_message(message: paho.MQTTMessage) -> None:
        marks = getattr(message.properties, "UserProperty", [])
        got.append((bytes(message.payload), message.qos, marks))
        if len(got) == len(PAYLOADS):
            every.set()

    # Every fifth at QoS 0, every seventh with a property (paho's general path reads it).
    def qos_of(n: int) -> int:
        return 0 if n % 5 == 0 else 1

    def marks_of(n: int) -> list[tuple[str, str]]:
        return [("n", str(n))] if n % 7 == 0 else []

    link = LoopClient(f"in-{uuid.uuid4().hex[:6]}", "127.0.0.1", broker.port)
    assert (type(link.client).__name__ == "_BufferedClient") == (link_kind == "chunked")
    link.on_message = on_message
    link.on_up = lambda: link.subscribe(TOPIC, qos=1)
    async with running_link(broker, link):
        await asyncio.sleep(0.2)  # the SUBACK: the subscription is in place
        sender = plain_client(broker)
        sender.loop_start()
        try:
            for n, payload in enumerate(PAYLOADS):
                props = None
                if marks_of(n):
                    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                    props.UserProperty = marks_of(n)
                sender.publish(TOPIC, payload, qos=qos_of(n), properties=props)
            # In time, too: bytes left in the link's buffer would otherwise wait for the
            # next packet or the keepalive to make the socket readable again.
            async with asyncio.timeout(5):
                await every.wait()
        finally:
            sender.disconnect()
            sender.loop_stop()
    sent = [(p, qos_of(n), marks_of(n)) for n, p in enumerate(PAYLOADS)]
    # In order within each QoS (the broker lets QoS 0 pass QoS 1 held by its inflight window).
    for qos in (0, 1):
        assert [m for m in got if m[1] == qos] == [m for m in sent if m[1] == qos]


@pytest.mark.parametrize("qos", [1, 0])
async def test_a_burst_out_arrives_whole_in_order(
    broker: LocalBroker, qos: int, link_kind: str
) -> None:
    topic = TOPIC if qos else QUICK
    receiver, got, every = receiving(broker, topic, len(PAYLOADS))
    try:
        await asyncio.sleep(0.2)
        link = LoopClient(f"out-{uuid.uuid4().hex[:6]}", "127.0.0.1", broker.port)
        async with running_link(broker, link):
            # A small send buffer: most writes go out in part, the rest on the next one.
            sock = link.client.socket()
            assert isinstance(sock, socket.socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            sent = [link.publish(topic, payload, qos=qos) for payload in PAYLOADS]
            arrived = await asyncio.to_thread(every.wait, 10)
            # paho's own account of each message is kept: all went out (QoS 1: acked).
            async with asyncio.timeout(5):
                while not all(info.is_published() for info in sent):  # noqa: ASYNC110 - paho has no event
                    await asyncio.sleep(0.05)
    finally:
        receiver.disconnect()
        receiver.loop_stop()
    assert arrived
    assert got == PAYLOADS


async def test_what_is_published_before_the_link_is_up_is_sent_once_it_is(
    broker: LocalBroker,
) -> None:
    receiver, got, every = receiving(broker, TOPIC, 50)
    try:
        await asyncio.sleep(0.2)
        link = LoopClient(f"early-{uuid.uuid4().hex[:6]}", "127.0.0.1", broker.port)
        # Kept in paho's queue of messages (their record says "not connected"): sent on connect.
        for n in range(50):
            link.publish(TOPIC, PAYLOADS[n], qos=1)
        async with running_link(broker, link):
            arrived = await asyncio.to_thread(every.wait, 10)
    finally:
        receiver.disconnect()
        receiver.loop_stop()
    assert arrived
    assert got == PAYLOADS[:50]
