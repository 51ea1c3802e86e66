"""JSON-lines logging for the kiosk service (journald keeps one object per line)."""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter


def setup(level: str) -> None:
    """Log to stderr as JSON objects, tagged with the service name."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(static_fields={"service": "kiosk"}, timestamp="ts"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
