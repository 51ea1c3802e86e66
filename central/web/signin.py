"""Sign-in routes: e-mailed one-time links and passkeys (WebAuthn via the ``webauthn`` package).

The members' app mounts them at its root; the staff console mounts the same routes under
``/staff`` on its own credential tables (``base`` and ``home`` say where its pages are).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

import webauthn
from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from central.api.text import Text
from central.clock import Clock
from central.web.auth import Auth, digest, new_secret
from central.web.credentials import Credentials
from central.web.mail import Mailer
from central.web.ratelimit import Buckets
from central.web.refusals import WebRefusal, refuse

log = logging.getLogger(__name__)

LINK_TTL = timedelta(minutes=20)
CHALLENGE_TTL = timedelta(minutes=5)
# Told of each sign-in (account id, "link" or "passkey"): the console audits its staff's.
SignedIn = Callable[[str, str], Awaitable[None]]
_MAX_CREDENTIAL = 16_384  # bytes of JSON; a real assertion is well under 2 kB


class CredentialIn(BaseModel):
    """What the page posts back from ``navigator.credentials``: the challenge it answered."""

    model_config = ConfigDict(extra="forbid")

    challenge: str = Field(min_length=16, max_length=128)
    credential: dict[str, Any]


def router(
    data: Credentials,
    auth: Auth,
    clock: Clock,
    mailer: Mailer | None,
    rp_name: str,
    *,
    base: str = "",
    home: str = "/pass",
    signed_in: SignedIn | None = None,
) -> APIRouter:
    """The sign-in endpoints of a surface whose pages live under ``base``; ``signed_in`` hears
    each sign-in (the account, and "link" or "passkey")."""
    routes = APIRouter()
    per_client = Buckets(per_min=20, burst=10)
    per_email = Buckets(per_min=2, burst=3)
    rp_id = urlsplit(auth.origin).hostname or "localhost"

    def throttle(request: Request, *keys: str) -> None:
        client = request.client.host if request.client else "?"
        if not per_client.allow(client) or not all(per_email.allow(k) for k in keys):
            raise refuse(WebRefusal.RATE_LIMITED)

    @routes.post("/signin/email")
    async def email_link(
        request: Request,
        email: Annotated[Text, Form(max_length=254)],
        csrf: str = Form(max_length=100),
    ) -> Response:
        auth.check_pre(request, csrf)
        address = email.strip().lower()
        throttle(request, address)
        member_id = await data.member_by_email(address)
        # The same answer whether or not the address is a member's: no account probing.
        if member_id is not None and mailer is not None:
            await send_link(data, mailer, auth.origin, clock, member_id, address, base=base)
        return RedirectResponse(f"{base}/signin?sent=1", status_code=303)

    @routes.get("/signin/link/{token}")
    async def follow_link(token: str) -> Response:
        ok, member_id = await data.use_ticket(digest(token[:100]), "link", clock.now())
        if not ok or not member_id:
            raise refuse(WebRefusal.BAD_LINK)
        response = RedirectResponse(f"{base}{home}", status_code=303)
        await auth.sign_in(response, member_id)
        if signed_in is not None:
            await signed_in(member_id, "link")
        return response

    @routes.post("/signin/passkey/options")
    async def login_options(request: Request) -> Response:
        auth.check_pre(request, None)
        throttle(request)
        options = webauthn.generate_authentication_options(
            rp_id=rp_id, user_verification=UserVerificationRequirement.PREFERRED
        )
        await data.add_ticket(
            digest(bytes_to_base64url(options.challenge)),
            "login",
            None,
            clock.now() + CHALLENGE_TTL,
        )
        return Response(webauthn.options_to_json(options), media_type="application/json")

    @routes.post("/signin/passkey")
    async def login(request: Request, body: CredentialIn) -> Response:
        auth.check_pre(request, None)
        throttle(request)
        challenge = await _spend(data, clock, body.challenge, "login")
        raw_id = str(body.credential.get("rawId") or body.credential.get("id") or "")[:1400]
        key = await data.passkey(raw_id)
        if key is None:
            raise refuse(WebRefusal.UNKNOWN_PASSKEY)
        try:
            checked = webauthn.verify_authentication_response(
                credential=_bounded(body.credential),
                expected_challenge=challenge,
                expected_rp_id=rp_id,
                expected_origin=auth.origin,
                credential_public_key=key.public_key,
                credential_current_sign_count=key.sign_count,
            )
        except Exception as exc:  # any malformed or forged assertion
            log.info("passkey assertion refused: %s", type(exc).__name__)
            raise refuse(WebRefusal.BAD_ASSERTION) from None
        if not await data.bump_sign_count(raw_id, key.sign_count, checked.new_sign_count):
            raise refuse(WebRefusal.BAD_ASSERTION)  # a cloned key raced this one
        response = JSONResponse({"ok": True, "next": f"{base}{home}"})
        await auth.sign_in(response, key.member_id)
        if signed_in is not None:
            await signed_in(key.member_id, "passkey")
        return response

    @routes.post("/passkeys/options")
    async def register_options(request: Request) -> Response:
        session = await auth.require(request)
        auth.check_csrf(request, session, None)
        name = await data.member_name(session.member_id) or session.member_id
        options = webauthn.generate_registration_options(
            rp_id=rp_id,
            rp_name=rp_name,
            user_name=session.member_id,
            user_id=session.member_id.encode(),
            user_display_name=name,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(c))
                for c in await data.passkeys_of(session.member_id)
            ],
        )
        await data.add_ticket(
            digest(bytes_to_base64url(options.challenge)),
            "register",
            session.member_id,
            clock.now() + CHALLENGE_TTL,
        )
        return Response(webauthn.options_to_json(options), media_type="application/json")

    @routes.post("/passkeys")
    async def register(request: Request, body: CredentialIn) -> Response:
        session = await auth.require(request)
        auth.check_csrf(request, session, None)
        challenge = await _spend(data, clock, body.challenge, "register", session.member_id)
        try:
            checked = webauthn.verify_registration_response(
                credential=_bounded(body.credential),
                expected_challenge=challenge,
                expected_rp_id=rp_id,
                expected_origin=auth.origin,
            )
        except Exception as exc:  # any malformed or forged attestation
            log.info("passkey registration refused: %s", type(exc).__name__)
            raise refuse(WebRefusal.BAD_ASSERTION) from None
        await data.add_passkey(
            bytes_to_base64url(checked.credential_id),
            session.member_id,
            checked.credential_public_key,
            checked.sign_count,
            clock.now(),
        )
        return JSONResponse({"ok": True})

    @routes.post("/signout")
    async def sign_out(request: Request, csrf: str = Form(max_length=100)) -> Response:
        session = await auth.require(request)
        auth.check_csrf(request, session, csrf)
        response = RedirectResponse(f"{base}/", status_code=303)
        await auth.sign_out(request, response)
        return response

    return routes


async def send_link(
    data: Credentials,
    mailer: Mailer,
    origin: str,
    clock: Clock,
    member_id: str,
    email: str,
    *,
    base: str = "",
) -> None:
    """E-mail ``member_id`` a one-time sign-in link (also how staff invite a member, and how
    an admin invites staff: ``base`` "/staff")."""
    link = await mint_link(data, origin, clock, member_id, base=base)
    await mailer.send(
        email,
        "Your CommunityShare sign-in link",
        f"Open this link on your phone to sign in (valid {int(LINK_TTL.total_seconds()) // 60}"
        f" minutes, once):\n\n{link}\n",
    )


async def mint_link(
    data: Credentials, origin: str, clock: Clock, member_id: str, *, base: str = ""
) -> str:
    """A fresh one-time sign-in link for ``member_id`` (only its hash is stored)."""
    token = new_secret()
    await data.add_ticket(digest(token), "link", member_id, clock.now() + LINK_TTL)
    return f"{origin}{base}/signin/link/{token}"


async def _spend(
    data: Credentials, clock: Clock, challenge: str, purpose: str, member_id: str | None = None
) -> bytes:
    """The challenge's bytes, spent once; BAD_CHALLENGE if unknown, expired or replayed."""
    ok, owner = await data.use_ticket(digest(challenge), purpose, clock.now())
    if not ok or (member_id is not None and owner != member_id):
        raise refuse(WebRefusal.BAD_CHALLENGE)
    try:
        return webauthn.base64url_to_bytes(challenge)
    except Exception:
        raise refuse(WebRefusal.BAD_CHALLENGE) from None


def _bounded(credential: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(credential)) > _MAX_CREDENTIAL:
        raise refuse(WebRefusal.BAD_INPUT)
    return credential
