"""The staff console: a FastAPI app mounted at ``/staff`` on central's HTTP app.

Pages are server-rendered; writes go through the same application services as the admin
API (``central/services``), each copied per request with the staff member's name as its
actor, so every action is audited as ``staff:<name>``. Live panels follow ``/events``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from broker.messages import KioskState
from central.console import actions
from central.console.gate import Gate, NotSignedInError, Staff
from central.console.parts import ConsoleParts, for_staff
from central.services.audit_log import AuditLog
from central.services.browse import Browse
from central.services.circulation import Circulation
from central.services.kiosks import Kiosks
from central.services.library import Library
from central.services.loans import Loans
from central.services.refusals import RefusedError
from central.services.reminders import Reminders
from central.services.rollout_control import RolloutControl
from central.services.staff import Role, StaffData
from central.storage.base import AuditEntry
from central.web import signin
from central.web.auth import PRE_COOKIE, Auth, Cookies
from central.web.live import sse_frame
from central.web.store import MembersData

_HERE = Path(__file__).parent
_MEMBERS_STATIC = _HERE.parent / "web" / "static"
STAFF_COOKIE = "cs_staff"
# A shift, not a month: a console left open on the desk's laptop signs itself out overnight.
STAFF_SESSION_TTL = timedelta(hours=12)
_FLEET_EVERY_S = 2.0
_CHARTS_EVERY_S = 10.0
_PAGE_KIOSKS = 50


def create_console(parts: ConsoleParts, *, origin: str, secure_cookies: bool) -> FastAPI:  # noqa: PLR0915 - one closure per page
    """The console app; mount it at ``/staff``."""
    data = StaffData(parts.hooks)
    auth = Auth(
        data,
        parts.clock,
        Cookies(secure=secure_cookies),
        origin,
        cookie=STAFF_COOKIE,
        ttl=STAFF_SESSION_TTL,
    )
    gate = Gate(auth, data, parts.store, parts.clock)
    volunteer, admin = gate.need(Role.VOLUNTEER), gate.need(Role.ADMIN)
    found = parts.services.get(Browse)
    browse = found if isinstance(found, Browse) else Browse(parts.hooks)
    if parts.hub.resolve is None:
        parts.hub.resolve = MembersData(parts.hooks).session_member
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/passkeys.js")
    async def passkeys_js() -> Response:
        # The members' app's own passkey script (one copy); console.js points it at /staff.
        return FileResponse(_MEMBERS_STATIC / "passkeys.js", media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    templates = Jinja2Templates(directory=_HERE / "templates")

    async def signed_in(staff_id: str, via: str) -> None:
        account = await data.account(staff_id)
        name = account.name if account is not None else staff_id
        async with parts.store.write() as tx:
            await tx.audit(
                AuditEntry(
                    parts.clock.now(),
                    f"staff:{name}",
                    "staff.signin",
                    detail={"staff_id": staff_id, "via": via},
                )
            )

    app.include_router(
        signin.router(
            data,
            auth,
            parts.clock,
            parts.mailer,
            "CommunityShare staff",
            base="/staff",
            home="/",
            signed_in=signed_in,
        )
    )
    # (The admin app's RequestGuard is in front of this mount: sizes and paths checked there.)

    @app.exception_handler(NotSignedInError)
    async def not_signed_in(request: Request, _exc: NotSignedInError) -> Response:
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/staff/signin", status_code=303)
        return JSONResponse({"detail": {"reason": "NOT_SIGNED_IN"}}, status_code=401)

    @app.exception_handler(RefusedError)
    async def refused(_request: Request, exc: RefusedError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=actions.status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"where": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]}
            for e in exc.errors()[:50]
        ]
        return JSONResponse({"detail": {"reason": "INVALID", "problems": problems}}, 422)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'"
        )
        return response

    async def page(request: Request, name: str, staff: Staff | None, **context: Any) -> Response:
        pre, fresh = auth.pre_token(request)
        response = templates.TemplateResponse(
            request,
            name,
            {"staff": staff, "pre": pre, "tab": name.split(".", maxsplit=1)[0], **context},
        )
        if fresh:
            auth.cookies.set(response, PRE_COOKIE, pre, 3600)
        return response

    @app.get("/signin")
    async def signin_page(request: Request, sent: int = 0) -> Response:
        return await page(request, "signin.html", await gate.current(request), sent=bool(sent))

    @app.get("/")
    async def fleet(
        request: Request, staff: Staff = volunteer, q: str = "", page_no: int = 1
    ) -> Response:
        kiosks = for_staff(parts.services, Kiosks, staff)
        views = [v for v in await kiosks.views() if q.lower() in v.kiosk_id.lower()]
        start = (max(1, page_no) - 1) * _PAGE_KIOSKS
        return await page(
            request,
            "fleet.html",
            staff,
            kiosks=views[start : start + _PAGE_KIOSKS],
            total=len(views),
            online=sum(1 for v in views if v.online),
            q=q,
            page_no=max(1, page_no),
            pages=max(1, -(-len(views) // _PAGE_KIOSKS)),
        )

    @app.get("/library")
    async def library(
        request: Request, staff: Staff = volunteer, q: str = "", shelf: str = "", page_no: int = 1
    ) -> Response:
        items = await browse.items(q[:80], shelf[:32], page_no)
        shelves = await for_staff(parts.services, Library, staff).shelves()
        return await page(
            request, "library.html", staff, items=items, shelves=shelves, q=q, shelf=shelf
        )

    @app.get("/items/{item_id}/line")
    async def item_line(item_id: str, _staff: Staff = volunteer) -> JSONResponse:
        line = await browse.item(item_id[:64])
        if line is None:
            return JSONResponse({"detail": {"reason": "NOT_FOUND"}}, status_code=404)
        due = line.due_at.strftime("%Y-%m-%d") if line.due_at else ""
        return JSONResponse({"state": line.state, "member_id": line.member_id, "due": due})

    @app.get("/members")
    async def members(
        request: Request, staff: Staff = volunteer, q: str = "", page_no: int = 1
    ) -> Response:
        found = await browse.members(q[:80], page_no)
        return await page(request, "members.html", staff, members=found, q=q)

    @app.get("/circulation")
    async def circulation(
        request: Request, staff: Staff = volunteer, q: str = "", page_no: int = 1
    ) -> Response:
        loans = await browse.loans(q[:80], page_no)
        overdue = await for_staff(parts.services, Loans, staff).overdue()
        holds: list[Any] = []
        tickets: list[Any] = []
        deliveries: list[Any] = []
        circulation = parts.services.get(Circulation)
        if isinstance(circulation, Circulation):
            holds = await circulation.holds(open_only=True)
            tickets = await circulation.tickets(open_only=True)
        reminders = parts.services.get(Reminders)
        if isinstance(reminders, Reminders):
            deliveries = (await reminders.log(None, None))[:100]
        return await page(
            request,
            "circulation.html",
            staff,
            loans=loans,
            overdue=overdue[:200],
            holds=holds[:200],
            tickets=tickets[:200],
            deliveries=deliveries,
            q=q,
        )

    @app.get("/live")
    async def live(request: Request, staff: Staff = volunteer) -> Response:
        parts.pulse.sample()  # the page opens on what happened up to now
        return await page(request, "live.html", staff, charts=parts.pulse.charts())

    @app.get("/ops")
    async def ops(request: Request, staff: Staff = admin) -> Response:
        control = parts.services.get(RolloutControl)
        flag = window = None
        if isinstance(control, RolloutControl):
            flag = await control.flag()
            window = await control.window()
        audit = for_staff(parts.services, AuditLog, staff)
        tail = await audit.tail(100)
        alerts = await browse.alerts(50)
        return await page(
            request,
            "ops.html",
            staff,
            flag=flag,
            window=window,
            alerts=alerts,
            audit=tail,
            accounts=await data.accounts(),
        )

    @app.get("/events")
    async def events(request: Request, _staff: Staff = volunteer) -> StreamingResponse:
        async def still_signed_in() -> bool:
            return await gate.current(request) is not None

        return StreamingResponse(_stream(parts, still_signed_in), media_type="text/event-stream")

    app.include_router(actions.router(parts, volunteer, admin, browse))
    app.state.gate = gate
    return app


def _fleet_state(parts: ConsoleParts) -> dict[str, dict[str, Any]]:
    seen = parts.consumer.seen
    return {
        kiosk_id: {
            "state": status.state.value,
            "online": status.state is KioskState.ONLINE,
            "last_seen": seen[kiosk_id].isoformat() if kiosk_id in seen else None,
            "outbox": status.outbox_depth,
            "fps": status.camera_fps,
            "decode_ms": status.decode_ms,
            "version": status.software_version,
        }
        for kiosk_id, status in parts.consumer.presence.items()
    }


async def _stream(
    parts: ConsoleParts, still_signed_in: Callable[[], Awaitable[bool]]
) -> AsyncIterator[bytes]:
    """Verdicts and availability as they happen; fleet changes and charts every few seconds.

    Ends when the session does (signed out, expired, account switched off), checked with
    each charts frame, so a disabled account's open page stops hearing the feed.
    """
    async with parts.hub.watch() as queue:
        yield b": live\n\n"
        shown: dict[str, dict[str, Any]] = {}
        loop = asyncio.get_running_loop()
        next_fleet = next_charts = loop.time()
        while True:
            now = loop.time()
            if now >= next_fleet:
                current = _fleet_state(parts)
                # Only what changed: 1,000 kiosks cost one frame of the few that moved.
                changed = {k: v for k, v in current.items() if shown.get(k) != v}
                if changed:
                    online = sum(1 for v in current.values() if v["online"])
                    yield sse_frame("fleet", {"kiosks": changed, "online": online})
                shown, next_fleet = current, now + _FLEET_EVERY_S
            if now >= next_charts:
                if not await still_signed_in():
                    return
                parts.pulse.sample()
                yield sse_frame("charts", parts.pulse.charts())
                next_charts = now + _CHARTS_EVERY_S
            try:
                yield await asyncio.wait_for(
                    queue.get(), max(0.05, min(next_fleet, next_charts) - loop.time())
                )
            except TimeoutError:
                continue
