"""The members' app: a FastAPI app of its own (own port, auth, cookies), server-rendered pages."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from broker.messages import Reason
from central.api.guard import MAX_BODY, RequestGuard
from central.clock import Clock
from central.services.circulation import Circulation
from central.storage.reminders import ReminderRows
from central.tokens import STEP_S, TokenSigner, new_id
from central.web import circulation as web_circulation
from central.web import i18n, signin, unsubscribe, words
from central.web.auth import PRE_COOKIE, Auth, Cookies
from central.web.credentials import SqlHooks
from central.web.live import Hub, sse_frame
from central.web.mail import Mailer
from central.web.refusals import WebRefusal, count_guarded, refuse
from central.web.store import MembersData

_HERE = Path(__file__).parent
_KEEPALIVE_S = 15.0


def create_app(
    store: SqlHooks,
    signer: TokenSigner,
    clock: Clock,
    hub: Hub,
    *,
    origin: str,
    mailer: Mailer | None,
    secure_cookies: bool = True,
    rp_name: str = "CommunityShare",
    circulation: Circulation | None = None,
    reminder_rows: ReminderRows | None = None,
) -> FastAPI:
    """The members' app for one central instance (renewals and holds with ``circulation``,
    the reminders' unsubscribe page with ``reminder_rows``)."""
    data = MembersData(store)
    hub.resolve = data.session_member
    auth = Auth(data, clock, Cookies(secure=secure_cookies), origin)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.data = data
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    templates = Jinja2Templates(directory=_HERE / "templates")
    app.include_router(signin.router(data, auth, clock, mailer, rp_name))
    if circulation is not None:
        app.include_router(web_circulation.router(auth, circulation))
    # The admin API's guard, first in line: no form or passkey answer comes near 64 KiB, and
    # no path of this app ever holds a control character (central/api_guard.py).
    app.add_middleware(RequestGuard, count=count_guarded, limit_for=lambda _path: MAX_BODY)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own answer repeats the bad value; say only that it was refused.
        refusal = refuse(WebRefusal.BAD_INPUT)
        return JSONResponse({"detail": refusal.detail}, status_code=refusal.status_code)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        # Pages hold a pass: no framing, no sniffing, scripts only from here.
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" makes Origin null
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'"
        )
        return response

    async def page(request: Request, name: str, **context: Any) -> Response:
        session = await auth.current(request)
        lang = i18n.pick(request)
        pre, fresh = auth.pre_token(request)
        response = templates.TemplateResponse(
            request,
            name,
            {
                "t": i18n.catalogue(lang),
                "lang": lang,
                "session": session,
                "pre": pre,
                "member_name": await data.member_name(session.member_id) if session else None,
                **context,
            },
        )
        if fresh:
            auth.cookies.set(response, PRE_COOKIE, pre, 3600)
        return response

    if reminder_rows is not None:
        app.include_router(unsubscribe.router(reminder_rows, clock, page))

    @app.get("/")
    async def catalogue(request: Request, q: str = "", shelf: str = "") -> Response:
        items = await data.catalogue(q[:80], shelf[:32])
        shelves = await data.shelves()
        return await page(request, "catalogue.html", items=items, shelves=shelves, q=q, shelf=shelf)

    @app.get("/signin")
    async def signin_page(request: Request, sent: int = 0) -> Response:
        return await page(request, "signin.html", sent=bool(sent))

    @app.get("/pass")
    async def pass_page(request: Request) -> Response:
        session = await auth.current(request)
        if session is None:
            return Response(status_code=303, headers={"Location": "/signin"})
        devices = await data.devices(session.member_id)
        return await page(request, "pass.html", devices=devices, step_s=STEP_S)

    @app.get("/loans")
    async def loans_page(request: Request, said: str = "") -> Response:
        session = await auth.current(request)
        if session is None:
            return Response(status_code=303, headers={"Location": "/signin"})
        holds = [] if circulation is None else await circulation.holds(member_id=session.member_id)
        return await page(
            request,
            "loans.html",
            loans=await data.loans(session.member_id),
            holds=holds,
            circulation=circulation is not None,
            # Only a known reason code picks a sentence; anything else says nothing.
            said=said if said in Reason.__members__ else "",
        )

    @app.get("/api/loans")
    async def my_loans(request: Request) -> Response:
        # Only ever the signed-in member's own loans: no member id is taken from the request.
        session = await auth.require(request)
        loans = await data.loans(session.member_id)
        return JSONResponse(
            [
                {
                    "item_id": loan.item_id,
                    "item": loan.item_name,
                    "due_at": loan.due_at.isoformat(),
                    "returned_at": loan.returned_at.isoformat() if loan.returned_at else None,
                }
                for loan in loans
            ]
        )

    @app.post("/devices")
    async def new_device(request: Request) -> Response:
        session = await auth.require(request)
        auth.check_csrf(request, session, None)
        device_id = new_id()
        label = request.headers.get("user-agent", "phone")[:60]
        await data.add_device(device_id, session.member_id, label, clock.now())
        secret = signer.device_secret(session.member_id, device_id)
        return JSONResponse(
            {
                "member_id": session.member_id,
                "device_id": device_id,
                "kid": signer.active_kid(),
                "secret": base64.b64encode(secret).decode(),
                "step_s": STEP_S,
            }
        )

    @app.post("/devices/{device_id}/revoke")
    async def revoke_device(
        request: Request, device_id: str, csrf: str = Form(max_length=100)
    ) -> Response:
        session = await auth.require(request)
        auth.check_csrf(request, session, csrf)
        if not await data.revoke_device(device_id[:32], session.member_id, clock.now()):
            raise refuse(WebRefusal.UNKNOWN_DEVICE)
        return Response(status_code=303, headers={"Location": "/pass"})

    @app.get("/events")
    async def events() -> StreamingResponse:
        return StreamingResponse(_stream(hub), media_type="text/event-stream")

    @app.get("/events/me")
    async def my_events(request: Request) -> StreamingResponse:
        session = await auth.require(request)
        texts = i18n.catalogue(i18n.pick(request))
        return StreamingResponse(
            _verdicts(hub, session.member_id, texts), media_type="text/event-stream"
        )

    @app.get("/sw.js")
    async def service_worker() -> Response:
        # Served from the root so its scope covers /pass.
        return FileResponse(_HERE / "static" / "sw.js", media_type="text/javascript")

    @app.get("/manifest.webmanifest")
    async def manifest() -> Response:
        return FileResponse(
            _HERE / "static" / "manifest.webmanifest", media_type="application/manifest+json"
        )

    return app


async def _verdicts(hub: Hub, member_id: str, texts: dict[str, str]) -> AsyncIterator[bytes]:
    async with hub.follow(member_id) as queue:
        yield b": live\n\n"
        while True:
            try:
                verdict = await asyncio.wait_for(queue.get(), _KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            payload = {"reason": verdict.reason.value, "text": words.say(verdict, texts)}
            yield sse_frame("verdict", payload)


async def _stream(hub: Hub) -> AsyncIterator[bytes]:
    async with hub.subscribe() as queue:
        yield b": live\n\n"
        while True:
            try:
                yield await asyncio.wait_for(queue.get(), _KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
