"""MQTT 5 packets as bytes, for load tools that must not pay a client library's overhead.

A benchmark that floods the broker, or holds thousands of idle connections, needs a
client whose cost per message is a few byte concatenations; paho spends tens of
microseconds of Python per message. Only what such tools send and read is here: CONNECT,
PUBLISH, SUBSCRIBE, PUBACK, PINGREQ, and splitting a byte stream into packets.
"""

from __future__ import annotations

from dataclasses import dataclass

CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBACK = 9
PINGRESP = 13
DISCONNECT = 14

PINGREQ = b"\xc0\x00"

_SESSION_EXPIRY = 0x11  # CONNECT property: seconds the broker keeps the session

_RECEIVE_MAXIMUM = 0x21  # CONNACK property: QoS 1 publishes the broker takes unacknowledged
_USER_PROPERTY = 0x26
# CONNACK properties of fixed size (MQTT 5, 3.2.2.3), by identifier; the rest carry a length.
_FIXED = {0x11: 4, 0x13: 2, 0x21: 2, 0x22: 2, 0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1}


def varint(n: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(text: str) -> bytes:
    """A length-prefixed UTF-8 string."""
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def connect(
    client_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    keepalive: int = 60,
    clean_start: bool = True,
    session_expiry_s: int = 0,
    will: tuple[str, bytes] | None = None,
) -> bytes:
    """CONNECT; by default with clean start and no properties.

    ``session_expiry_s`` > 0 asks the broker to keep the session; ``will`` is a retained
    QoS 1 last will (topic, payload), as kiosks leave their ``offline`` status.
    """
    flags = (
        (0x02 if clean_start else 0)
        | (0x80 if username is not None else 0)
        | (0x40 if password is not None else 0)
        | (0x04 | 0x08 | 0x20 if will is not None else 0)  # will, QoS 1, retained
    )
    props = (
        bytes([_SESSION_EXPIRY]) + session_expiry_s.to_bytes(4, "big") if session_expiry_s else b""
    )
    body = utf8("MQTT") + bytes([5, flags]) + keepalive.to_bytes(2, "big")
    body += varint(len(props)) + props + utf8(client_id)
    if will is not None:
        topic, payload = will
        body += b"\x00" + utf8(topic) + len(payload).to_bytes(2, "big") + payload
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += utf8(password)
    return b"\x10" + varint(len(body)) + body


def publish(
    topic: bytes, payload: bytes, *, qos: int = 0, packet_id: int = 0, retain: bool = False
) -> bytes:
    """PUBLISH of ``payload`` to an already length-prefixed ``topic`` (see :func:`utf8`)."""
    body = topic + (packet_id.to_bytes(2, "big") if qos else b"") + b"\x00" + payload
    return bytes([0x30 | qos << 1 | retain]) + varint(len(body)) + body


def puback(packet_id: bytes) -> bytes:
    """PUBACK (success, no properties) for a received QoS 1 PUBLISH's two id bytes."""
    return b"\x40\x02" + packet_id


def subscribe(topic: str, *, qos: int = 0, packet_id: int = 1) -> bytes:
    """SUBSCRIBE to one filter."""
    body = packet_id.to_bytes(2, "big") + b"\x00" + utf8(topic) + bytes([qos])
    return b"\x82" + varint(len(body)) + body


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet read off the wire: its type, flags and the bytes after the fixed header."""

    kind: int
    flags: int
    body: bytes


def split(buf: bytearray) -> list[Packet]:
    """Take every complete packet off the front of ``buf`` (a partial one stays)."""
    out: list[Packet] = []
    while len(buf) >= 2:
        length, shift, i = 0, 0, 1
        while i < len(buf):
            length |= (buf[i] & 0x7F) << shift
            shift += 7
            i += 1
            if not buf[i - 1] & 0x80:
                break
        else:
            break
        if len(buf) < i + length:
            break
        out.append(Packet(buf[0] >> 4, buf[0] & 0x0F, bytes(buf[i : i + length])))
        del buf[: i + length]
    return out


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def session_present(packet: Packet) -> bool:
    """Whether a CONNACK says the broker kept our session."""
    return bool(packet.body[0] & 0x01)


def connack(packet: Packet) -> tuple[int, int]:
    """(reason code, receive maximum) of a CONNACK; 65,535 when the broker names none."""
    body = packet.body
    reason, receive_max = body[1], 65_535
    if len(body) <= 2:
        return reason, receive_max
    length, at = _read_varint(body, 2)
    end = at + length
    while at < end:
        prop = body[at]
        at += 1
        if prop == _RECEIVE_MAXIMUM:
            receive_max = int.from_bytes(body[at : at + 2], "big")
        if prop in _FIXED:
            at += _FIXED[prop]
        elif prop == _USER_PROPERTY:  # a string pair
            at += 2 + int.from_bytes(body[at : at + 2], "big")
            at += 2 + int.from_bytes(body[at : at + 2], "big")
        else:  # a string or binary data: two length bytes first
            at += 2 + int.from_bytes(body[at : at + 2], "big")
    return reason, receive_max


def puback_reason(packet: Packet) -> int:
    """A PUBACK's reason code (0 when the broker left it out: success)."""
    return packet.body[2] if len(packet.body) > 2 else 0


def publish_payload(packet: Packet) -> bytes:
    """The application payload of a PUBLISH."""
    return publish_parts(packet)[0][1]


def publish_parts(packet: Packet) -> tuple[tuple[bytes, bytes], bytes]:
    """((topic, payload), packet id) of a PUBLISH; the id is empty at QoS 0."""
    return _publish_fields(packet.body, 0, packet.flags)


def one_publish(data: bytes) -> tuple[int, bytes, bytes, bytes] | None:
    """(flags, topic, packet id, payload) when ``data`` is exactly one PUBLISH, else None.

    A fan-out hands each receiver one whole PUBLISH per read; framing it in place, with
    the common sizes inlined, skips the buffer and the copies :func:`split` makes. None
    (a partial packet, several, another kind, 16 KB or more) leaves it to :func:`split`.
    """
    n = len(data)
    if n < 5 or data[0] >> 4 != PUBLISH:
        return None
    at, length = 2, data[1]
    if length & 0x80:
        if data[2] & 0x80:
            return None
        at, length = 3, (length & 0x7F) | data[2] << 7
    if at + length != n:
        return None
    flags = data[0] & 0x0F
    end = at + 2 + (data[at] << 8 | data[at + 1])
    packet_id = b""
    if flags & 0x06:
        packet_id = data[end : end + 2]
        end += 2
    props = data[end]
    if props & 0x80:
        return None
    return (
        flags,
        data[at + 2 : at + 2 + (data[at] << 8 | data[at + 1])],
        packet_id,
        data[end + 1 + props :],
    )


def _publish_fields(body: bytes, at: int, flags: int) -> tuple[tuple[bytes, bytes], bytes]:
    end = at + 2 + int.from_bytes(body[at : at + 2], "big")
    topic = body[at + 2 : end]
    at = end
    packet_id = b""
    if (flags >> 1) & 0x03:
        packet_id = body[at : at + 2]
        at += 2
    props, at = _read_varint(body, at)
    return (topic, body[at + props :]), packet_id
