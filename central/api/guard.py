"""Bounds on every HTTP request before it reaches a route: body size, control characters, errors.

Everything here runs before authentication and before any JSON is parsed, so an anonymous
client cannot make central read, parse or log more than a few kilobytes, and a refusal
never echoes what was sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from central.api.text import has_forbidden

log = logging.getLogger(__name__)

# A JSON body of an ordinary admin request or an enrolment claim is well under this.
MAX_BODY = 64 * 1024
# Imports carry up to 20,000 rows of a few dozen bytes each.
MAX_IMPORT_BODY = 8 * 1024 * 1024
# A kiosk release: the project's wheel (a few hundred KiB) base64-encoded in JSON, with room.
MAX_RELEASE_BODY = 12 * 1024 * 1024


class HttpRefusal(StrEnum):
    """Why a request was refused before a route saw it (the ``reason`` of the answer)."""

    TOO_LARGE = "TOO_LARGE"
    BAD_LENGTH = "BAD_LENGTH"
    CONTROL_CHARACTERS = "CONTROL_CHARACTERS"
    INVALID = "INVALID"
    RATE_LIMITED = "RATE_LIMITED"


def body_limit_for(path: str) -> int:
    """The largest body accepted on ``path``: imports and releases get more, the rest little."""
    if path.endswith("/import"):
        return MAX_IMPORT_BODY
    return MAX_RELEASE_BODY if path.rstrip("/") == "/releases" else MAX_BODY


class RefusalCounter:
    """``qr_http_refused_total{reason}``: refusals counted, never logged one by one."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._counter = Counter(
            "qr_http_refused",
            "HTTP requests refused before a route ran, by reason.",
            ["reason"],
            registry=registry,
        )

    def __call__(self, reason: HttpRefusal) -> None:
        self._counter.labels(reason=reason.value).inc()


class RequestGuard:
    """Pure ASGI middleware: refuse oversized bodies (413) and control characters in the
    path or query (400) before routing, authentication or parsing."""

    def __init__(
        self,
        app: ASGIApp,
        count: Callable[[HttpRefusal], None],
        limit_for: Callable[[str], int] = body_limit_for,
    ) -> None:
        self.app = app
        self._count = count
        self._limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        raw_query: bytes = scope.get("query_string", b"")
        # A NUL in an id reaches PostgreSQL as an error (500); bidi overrides and escapes
        # reach people's terminals. Neither is ever part of a valid id or filter.
        decoded_query = unquote_to_bytes(raw_query).decode("utf-8", "replace")
        if has_forbidden(path) or has_forbidden(decoded_query):
            await self._refuse(send, 400, HttpRefusal.CONTROL_CHARACTERS, "control characters")
            return
        limit = self._limit_for(path)
        declared = _content_length(scope["headers"])
        if declared == -1:
            await self._refuse(send, 400, HttpRefusal.BAD_LENGTH, "bad Content-Length")
            return
        if declared is not None and declared > limit:
            await self._refuse(send, 413, HttpRefusal.TOO_LARGE, f"body over {limit} bytes")
            return
        # Read the body here, counting as it streams (chunked bodies declare no length),
        # and hand the route the copy: at most ``limit`` bytes are ever held.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(send, 413, HttpRefusal.TOO_LARGE, f"body over {limit} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, status: int, reason: HttpRefusal, message: str) -> None:
        self._count(reason)
        response = JSONResponse({"reason": reason.value, "detail": message}, status_code=status)
        # The rest of the body is never read: tell the client this connection is done.
        response.headers["Connection"] = "close"
        await response({"type": "http"}, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The declared body length; None if not given, -1 if it is not a number."""
    for name, value in headers:
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 19 else -1
    return None


def install(app: FastAPI, registry: CollectorRegistry | None = None) -> None:
    """Put the guard in front of ``app`` and answer invalid requests without echoing them."""
    count = RefusalCounter(registry)
    app.add_middleware(RequestGuard, count=count)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer repeats each bad value (``input``), so an open route would
        # mirror whatever it is sent; say where and why only.
        count(HttpRefusal.INVALID)
        return JSONResponse(
            {"reason": HttpRefusal.INVALID.value, "detail": errors_without_input(exc.errors())},
            status_code=422,
        )


def errors_without_input(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors with only where, what kind and why: never the value sent."""
    out: list[dict[str, Any]] = []
    for error in list(errors)[:20]:
        if not isinstance(error, Mapping):
            continue
        out.append(
            {
                "loc": [str(part)[:64] for part in error.get("loc", ())],
                "msg": str(error.get("msg", ""))[:200],
                "type": str(error.get("type", "")),
            }
        )
    return out
