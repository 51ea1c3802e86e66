"""JSON-lines logging for the central service (one object per line, never a token)."""

from __future__ import annotations

import logging
import sys
from typing import IO

from pythonjsonlogger.json import JsonFormatter

from broker.redact import RedactCodes


def setup(level: str = "INFO", *, service: str, stream: IO[str] | None = None) -> None:
    """Send every log record to ``stream`` (stderr) as one JSON object per line."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
            # Escapes every non-ASCII and control character from data (escape sequences,
            # bidi overrides): a log line can be read in a terminal without being obeyed.
            json_ensure_ascii=True,
        )
    )
    handler.addFilter(RedactCodes())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
