"""JSON-lines logging for the kiosk service (journald keeps one object per line)."""

from __future__ import annotations

import logging
from typing import IO

from pythonjsonlogger.json import JsonFormatter

from broker.redact import RedactCodes


def setup(level: str, stream: IO[str] | None = None) -> None:
    """Log to ``stream`` (stderr) as JSON objects, tagged with the service name."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            static_fields={"service": "kiosk"},
        )
    )
    handler.addFilter(RedactCodes())
    logging.basicConfig(level=level, handlers=[handler], force=True)
