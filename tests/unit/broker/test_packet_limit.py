"""The broker's packet limit fits the contract's largest message, and little more."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from broker import topics
from broker.config import (
    LONGEST_TOPIC,
    MAX_PACKET_BYTES,
    PUBLISH_OVERHEAD,
    SecureListener,
    development,
    secure,
)
from broker.messages import (
    MAX_PAYLOAD_BYTES,
    Availability,
    AvailabilityState,
    CameraConfig,
    CodeScan,
    FeedbackConfig,
    KioskConfig,
    KioskState,
    KioskStatus,
    PinConfig,
    Reason,
    SecurityAlert,
    Sound,
    Verdict,
    encode,
)

ID = "K" * 32  # the longest id the contract allows
WIDE = "\U0001d11e"  # four bytes of UTF-8: free text at its most expensive
# Fields held to printable ASCII: a quote costs two bytes once JSON-escaped.
WIDE_ASCII = '"'
AT = datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


def largest_messages() -> dict[str, tuple[str, BaseModel]]:
    """Every message kind at its maximum field sizes, on its own topic."""
    return {
        "scan": (
            topics.scan(ID),
            CodeScan(event_id="E" * 64, kiosk_id=ID, code="Q" * 256, scanned_at=AT, queued=True),
        ),
        "verdict": (
            topics.verdict(ID),
            Verdict(
                event_id="E" * 64,
                kiosk_id=ID,
                reason=Reason.MEMBER_SUSPENDED,
                accepted=False,
                item_id=ID,
                item_name=WIDE * 80,
                member_name=WIDE * 80,
                session_open=True,
                session_expires_at=AT,
                due_at=AT,
                decided_at=AT,
            ),
        ),
        "availability": (
            topics.availability(ID, ID),
            Availability(
                item_id=ID,
                shelf_id=ID,
                name=WIDE * 80,
                state=AvailabilityState.MAINTENANCE,
                due_at=AT,
                seq=2**63 - 1,
                changed_at=AT,
            ),
        ),
        "status": (
            topics.status(ID),
            KioskStatus(
                kiosk_id=ID,
                state=KioskState.OFFLINE,
                software_version=WIDE_ASCII * 32,
                config_version=2**63 - 1,
                outbox_depth=2**63 - 1,
                camera_ok=False,
                at=AT,
                camera_fps=999.999999,
                decode_ms=59_999.999999,
                config_problem=WIDE_ASCII * 200,
            ),
        ),
        "config": (
            topics.config(ID),
            KioskConfig(
                kiosk_id=ID,
                shelf_id=ID,
                config_version=2**63 - 1,
                session_timeout_s=3599.999999,
                checkout_enabled=False,
                pins=PinConfig(red=20, green=21, blue=22, buzzer=23, button=24),
                camera=CameraConfig(
                    size=(4096, 4096), fps=119.999999, exposure_us=1_000_000, focus=31.999999
                ),
                feedback=FeedbackConfig(sound=Sound.REFUSALS),
            ),
        ),
        "alert": (
            topics.ALERTS,
            SecurityAlert(kind=WIDE * 64, kiosk_id=ID, member_id=ID, detail=WIDE * 500, at=AT),
        ),
    }


def publish_size(topic: str, payload: bytes) -> int:
    """Bytes of an MQTT 5 QoS 1 PUBLISH of ``payload`` on ``topic``, our header budget."""
    return len(payload) + len(topic.encode()) + PUBLISH_OVERHEAD


def test_the_largest_valid_message_of_every_kind_fits_the_packet_limit() -> None:
    sizes = {}
    for kind, (topic, message) in largest_messages().items():
        payload = encode(message)
        assert len(payload) <= MAX_PAYLOAD_BYTES, kind  # central parses it
        assert len(topic) <= len(LONGEST_TOPIC), kind
        sizes[kind] = publish_size(topic, payload)
        assert sizes[kind] <= MAX_PACKET_BYTES, kind  # the broker passes it
    # Central's parse limit is the broker's limit less one header: consistent, and the
    # limit is within a small factor of what the contract really needs.
    assert publish_size(LONGEST_TOPIC, b"x" * MAX_PAYLOAD_BYTES) == MAX_PACKET_BYTES
    assert 2 * max(sizes.values()) >= MAX_PACKET_BYTES, sizes


def test_every_broker_config_sets_the_packet_limit(tmp_path: Path) -> None:
    root = tmp_path
    listener = SecureListener(auth_dir=root / "a", tls_dir=root / "t")
    for text in (development(1883, root), secure(listener, root)):
        assert f"\nmax_packet_size {MAX_PACKET_BYTES}\n" in text
