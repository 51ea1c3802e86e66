"""Identifier shapes shared by topics, payloads and QR codes."""

import re
from typing import Annotated

from pydantic import StringConstraints

# Upper-case letters, digits and '-' only: safe inside MQTT topic levels (no '+', '#',
# '/'), inside QR alphanumeric mode, and inside our dotted code grammar (no '.').
ID_PATTERN = r"^[A-Z0-9][A-Z0-9-]{0,31}$"
ID_RE = re.compile(ID_PATTERN)

KioskId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
ShelfId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
ItemId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
MemberId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
# Event ids are minted by kiosks (uuid4 hex or ULID); they key idempotency.
EventId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z-]{8,64}$")]


def is_id(text: str) -> bool:
    """Whether ``text`` is a valid kiosk, shelf, item or member id."""
    return ID_RE.fullmatch(text) is not None
