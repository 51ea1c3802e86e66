"""The fleet simulator's fast framing reads a PUBLISH exactly as the general framing does."""

from __future__ import annotations

import pytest

from bench import raw_mqtt
from broker import topics

TOPIC = raw_mqtt.utf8(topics.availability("SHELF-00000", "ITEM-00000-03"))


def _general(data: bytes) -> tuple[int, bytes, bytes, bytes]:
    [packet] = raw_mqtt.split(bytearray(data))
    (topic, payload), packet_id = raw_mqtt.publish_parts(packet)
    return packet.flags, topic, packet_id, payload


@pytest.mark.parametrize(
    ("payload", "qos", "retain"),
    [
        (b"{}", 0, False),  # one length byte
        (b"x" * 194, 0, False),  # an availability copy: two length bytes
        (b"x" * 194, 0, True),  # the retained copy handed over on SUBSCRIBE
        (b"x" * 194, 1, False),  # with a packet id to acknowledge
        (b"", 0, False),
    ],
)
def test_one_whole_publish_is_read_as_the_general_framing_reads_it(
    payload: bytes, qos: int, retain: bool
) -> None:
    data = raw_mqtt.publish(TOPIC, payload, qos=qos, packet_id=7 if qos else 0, retain=retain)
    assert raw_mqtt.one_publish(data) == _general(data)
    flags, topic, packet_id, got = _general(data)
    assert (topic, got, bool(flags & 1)) == (TOPIC[2:], payload, retain)
    assert packet_id == (b"\x00\x07" if qos else b"")


def test_anything_but_exactly_one_small_publish_is_left_to_the_general_framing() -> None:
    data = raw_mqtt.publish(TOPIC, b"x" * 194)
    assert raw_mqtt.one_publish(data[:-1]) is None  # the rest is still on its way
    assert raw_mqtt.one_publish(data[:2]) is None
    assert raw_mqtt.one_publish(data + data) is None  # two in one read
    assert raw_mqtt.one_publish(raw_mqtt.PINGREQ) is None
    assert raw_mqtt.one_publish(raw_mqtt.subscribe("a/b")) is None
    big = raw_mqtt.publish(TOPIC, b"x" * 20_000)  # three length bytes
    assert raw_mqtt.one_publish(big) is None
    assert _general(big)[3] == b"x" * 20_000
