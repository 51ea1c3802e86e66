"""Scan events as a kiosk would publish them, for tests that play kiosks over raw MQTT."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from broker import topics
from broker.messages import CodeScan, SessionDone, Verdict, encode
from testkit.probe import Probe


def scan(kiosk_id: str, code: str, event_id: str | None = None) -> CodeScan:
    """A scan of ``code`` at ``kiosk_id`` now, with a fresh event id unless one is given."""
    return CodeScan(
        event_id=event_id or uuid.uuid4().hex,
        kiosk_id=kiosk_id,
        code=code,
        scanned_at=datetime.now(UTC),
    )


async def ask(probe: Probe, event: CodeScan | SessionDone) -> Verdict:
    """Publish ``event`` as its kiosk and wait for the verdict on it (others are skipped)."""
    probe.publish(topics.scan(event.kiosk_id), encode(event))
    while True:
        received = await asyncio.to_thread(probe.next, 10.0, topic_suffix="/verdict")
        verdict = Verdict.model_validate_json(received.payload)
        if verdict.event_id == event.event_id:
            return verdict
