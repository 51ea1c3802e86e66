"""Why the members' app refuses a request: one reason code per refusal, counted in aggregate."""

from __future__ import annotations

from collections import Counter
from enum import StrEnum

from fastapi import HTTPException

from central.api.guard import HttpRefusal


class WebRefusal(StrEnum):
    """The reason codes the members' app answers with."""

    NOT_SIGNED_IN = "NOT_SIGNED_IN"
    BAD_CSRF = "BAD_CSRF"
    RATE_LIMITED = "RATE_LIMITED"
    BAD_LINK = "BAD_LINK"
    BAD_CHALLENGE = "BAD_CHALLENGE"
    BAD_ASSERTION = "BAD_ASSERTION"
    UNKNOWN_PASSKEY = "UNKNOWN_PASSKEY"
    UNKNOWN_DEVICE = "UNKNOWN_DEVICE"
    BAD_INPUT = "BAD_INPUT"


_STATUS = {
    WebRefusal.NOT_SIGNED_IN: 401,
    WebRefusal.BAD_CSRF: 403,
    WebRefusal.RATE_LIMITED: 429,
    WebRefusal.UNKNOWN_DEVICE: 404,
}

# One counter per reason (never a row per refusal): a flood costs a dict increment.
REFUSED: Counter[WebRefusal] = Counter()
# Requests the guard in front of the app refused before any route (too large, control
# characters in the path), counted the same way.
GUARDED: Counter[HttpRefusal] = Counter()


def count_guarded(reason: HttpRefusal) -> None:
    """Count one request refused by :class:`central.api.guard.RequestGuard`."""
    GUARDED[reason] += 1


def refuse(reason: WebRefusal) -> HTTPException:
    """The HTTP error for ``reason`` (counted); raise it."""
    REFUSED[reason] += 1
    return HTTPException(_STATUS.get(reason, 400), detail={"reason": reason.value})
