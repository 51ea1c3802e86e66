"""The members' app's circulation writes: renew a loan, place or cancel a hold (CSRF-checked).

The member is always the signed-in one, never taken from the request; the rules are the
kiosk's (:mod:`central.services.circulation` calls :mod:`central.circulation`).
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request, Response

from broker.messages import Reason
from central.services.circulation import Circulation
from central.services.refusals import RefusedError
from central.web.auth import Auth


def _said(reason: Reason) -> Response:
    # Back to the loans page, which says how it went (its text is chosen there).
    return Response(status_code=303, headers={"Location": f"/loans?said={reason.value}"})


def router(auth: Auth, circulation: Circulation) -> APIRouter:
    """``POST /loans/{item}/renew``, ``POST /items/{item}/hold``, ``POST /holds/{id}/cancel``."""
    routes = APIRouter()

    @routes.post("/loans/{item_id}/renew")
    async def renew(request: Request, item_id: str, csrf: str = Form(max_length=100)) -> Response:
        session = await auth.require(request)
        auth.check_csrf(request, session, csrf)
        member = session.member_id
        try:
            renewal = await circulation.renew(member, item_id[:32], actor=f"member:{member}")
        except RefusedError:
            return _said(Reason.NOT_CHECKED_OUT)
        return _said(renewal.reason)

    @routes.post("/items/{item_id}/hold")
    async def hold(request: Request, item_id: str, csrf: str = Form(max_length=100)) -> Response:
        session = await auth.require(request)
        auth.check_csrf(request, session, csrf)
        member = session.member_id
        try:
            await circulation.place_hold(item_id[:32], member, "app", actor=f"member:{member}")
        except RefusedError:
            return _said(Reason.ITEM_UNAVAILABLE)
        return _said(Reason.HOLD_PLACED)

    @routes.post("/holds/{hold_id}/cancel")
    async def cancel(request: Request, hold_id: int, csrf: str = Form(max_length=100)) -> Response:
        session = await auth.require(request)
        auth.check_csrf(request, session, csrf)
        member = session.member_id
        try:
            await circulation.cancel_hold(hold_id, member_id=member, actor=f"member:{member}")
        except RefusedError:
            return _said(Reason.NOT_CHECKED_OUT)
        return Response(status_code=303, headers={"Location": "/loans"})

    return routes
