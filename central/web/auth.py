"""Who is signed in: the session cookie, CSRF checks and the one-time secrets behind them.

Shared by the members' app and the staff console; each hands :class:`Auth` its own
credential tables and cookie name.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request, Response

from central.clock import Clock
from central.web.credentials import Credentials, WebSession
from central.web.refusals import WebRefusal, refuse

SESSION_COOKIE = "cs_member"
PRE_COOKIE = "cs_pre"  # double-submit CSRF token before sign-in
SESSION_TTL = timedelta(days=30)
CSRF_HEADER = "x-csrf-token"


def digest(secret: str) -> str:
    """What the database keeps of a cookie, link or challenge: never the secret itself."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    """A fresh unguessable token for cookies, links and CSRF."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Cookies:
    """How this deployment marks its cookies (``Secure`` unless serving plain HTTP in dev)."""

    secure: bool = True

    def set(self, response: Response, name: str, value: str, max_age: int) -> None:
        """Set an HttpOnly, SameSite=Strict cookie."""
        response.set_cookie(
            name, value, max_age=max_age, httponly=True, secure=self.secure, samesite="strict"
        )


class Auth:
    """Signs browsers in and out and checks every write."""

    def __init__(
        self,
        data: Credentials,
        clock: Clock,
        cookies: Cookies,
        origin: str,
        *,
        cookie: str = SESSION_COOKIE,
        ttl: timedelta = SESSION_TTL,
    ) -> None:
        self._data = data
        self._clock = clock
        self.cookies = cookies
        self.origin = origin
        self.cookie = cookie
        self.ttl = ttl

    async def current(self, request: Request) -> WebSession | None:
        """Who is signed in on this request, if anyone."""
        cookie = request.cookies.get(self.cookie)
        if not cookie or len(cookie) > 100:
            return None
        return await self._data.session(digest(cookie), self._clock.now())

    async def require(self, request: Request) -> WebSession:
        """Who is signed in, or a NOT_SIGNED_IN refusal."""
        session = await self.current(request)
        if session is None:
            raise refuse(WebRefusal.NOT_SIGNED_IN)
        return session

    async def sign_in(self, response: Response, member_id: str) -> None:
        """Start a session for ``member_id`` (a member or staff id) and set its cookie."""
        cookie, now = new_secret(), self._clock.now()
        await self._data.new_session(digest(cookie), member_id, new_secret(), now, now + self.ttl)
        self.cookies.set(response, self.cookie, cookie, int(self.ttl.total_seconds()))

    async def sign_out(self, request: Request, response: Response) -> None:
        """End this browser's session."""
        cookie = request.cookies.get(self.cookie)
        if cookie:
            await self._data.end_session(digest(cookie))
        response.delete_cookie(self.cookie)

    def check_origin(self, request: Request) -> None:
        """Refuse a write whose Origin (when the browser sends one) is not ours."""
        origin = request.headers.get("origin")
        if origin is not None and origin != self.origin:
            raise refuse(WebRefusal.BAD_CSRF)

    def check_csrf(self, request: Request, session: WebSession, sent: str | None) -> None:
        """A signed-in write must carry the session's CSRF token (form field or header)."""
        self.check_origin(request)
        token = sent or request.headers.get(CSRF_HEADER) or ""
        if not hmac.compare_digest(token.encode(), session.csrf.encode()):
            raise refuse(WebRefusal.BAD_CSRF)

    def check_pre(self, request: Request, sent: str | None) -> None:
        """A write before sign-in must echo the pre-sign-in cookie (double submit)."""
        self.check_origin(request)
        cookie = request.cookies.get(PRE_COOKIE, "")
        token = sent or request.headers.get(CSRF_HEADER) or ""
        if not cookie or not hmac.compare_digest(token.encode(), cookie.encode()):
            raise refuse(WebRefusal.BAD_CSRF)

    def pre_token(self, request: Request) -> tuple[str, bool]:
        """This browser's pre-sign-in CSRF token, and whether it is new (to be set)."""
        token = request.cookies.get(PRE_COOKIE)
        if token and len(token) <= 100:
            return token, False
        return new_secret(), True
