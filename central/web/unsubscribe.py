"""The unsubscribe page a reminder mail links to: GET asks to confirm, POST unsubscribes.

The token in the address is the member's own capability (RFC 8058 one-click: the mail
client POSTs it without cookies), so no sign-in and no CSRF token are asked for; a GET
never changes anything, so a link scanner opening the mail unsubscribes nobody.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response

from central.clock import Clock
from central.storage.reminders import ReminderRows
from central.web.refusals import WebRefusal, refuse

Page = Callable[..., Awaitable[Response]]


def router(rows: ReminderRows, clock: Clock, page: Page) -> APIRouter:
    """``/unsubscribe/{token}`` over the reminder rows."""
    routes = APIRouter()

    @routes.get("/unsubscribe/{token}")
    async def confirm(request: Request, token: str) -> Response:
        found = await rows.subscriber(token[:64])
        if found is None:
            raise refuse(WebRefusal.BAD_LINK)
        return await page(request, "unsubscribe.html", token=token, done=found[1])

    @routes.post("/unsubscribe/{token}")
    async def unsubscribe(request: Request, token: str) -> Response:
        if await rows.unsubscribe(token[:64], clock.now()) is None:
            raise refuse(WebRefusal.BAD_LINK)
        context: dict[str, Any] = {"token": token, "done": True}
        return await page(request, "unsubscribe.html", **context)

    return routes
