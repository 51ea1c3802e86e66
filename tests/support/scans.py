"""Scan events as a kiosk would publish them, for tests that play kiosks over raw MQTT."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from broker.messages import CodeScan


def scan(kiosk_id: str, code: str, event_id: str | None = None) -> CodeScan:
    """A scan of ``code`` at ``kiosk_id`` now, with a fresh event id unless one is given."""
    return CodeScan(
        event_id=event_id or uuid.uuid4().hex,
        kiosk_id=kiosk_id,
        code=code,
        scanned_at=datetime.now(UTC),
    )
