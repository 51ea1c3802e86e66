"""Every staff console route is guarded by a role on the server, sign-in alone excepted."""

from __future__ import annotations

from typing import Any, cast

from fastapi.routing import APIRoute

from central.console.app import create_console
from central.console.parts import ConsoleParts
from central.console.pulse import Pulse
from central.metrics import Metrics
from central.services.staff import Role
from central.web.live import Hub

# Routes that need no role: signing in and out, and the script the sign-in page loads.
OPEN = {
    "/signin",
    "/signin/email",
    "/signin/link/{token}",
    "/signin/passkey/options",
    "/signin/passkey",
    "/passkeys/options",
    "/passkeys",
    "/signout",
    "/passkeys.js",
}
# What an admin alone may do (the list: fleet, flag, kill switch, retire, audit export).
ADMIN_ONLY = {
    "/ops",
    "/kiosks/{kiosk_id}/identify",
    "/kiosks/{kiosk_id}/block",
    "/kiosks/{kiosk_id}/unblock",
    "/kiosks/{kiosk_id}/configure",
    "/kiosks/{kiosk_id}/retire",
    "/enrol",
    "/flag",
    "/kill",
    "/breaker/reset",
    "/audit/verify",
    "/audit/export",
    "/staff/invite",
}


def _console() -> Any:
    metrics = Metrics()
    nothing = cast(Any, None)
    parts = ConsoleParts(
        nothing,
        nothing,
        {},
        nothing,
        Hub(),
        Pulse(metrics.success, metrics.failed, metrics.validation_latency, lambda: 0),
        nothing,
        nothing,
        None,
        "http://localhost",
    )
    return create_console(parts, origin="http://localhost", secure_cookies=False)


def _flat(routes: list[Any]) -> list[APIRoute]:
    """The app's routes, those of included routers too (FastAPI keeps those aside)."""
    out: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append(route)
        elif hasattr(route, "original_router"):
            out += _flat(route.original_router.routes)
    return out


def _roles(route: APIRoute) -> set[str]:
    return {
        d.call.__name__
        for d in route.dependant.dependencies
        if d.call is not None and d.call.__name__.startswith("need_")
    }


def test_every_route_but_sign_in_needs_a_role_and_admin_routes_need_admin() -> None:
    routes = _flat(_console().routes)
    assert len(routes) > 25
    for route in routes:
        if route.path in OPEN:
            assert _roles(route) == set(), route.path
            continue
        needed = _roles(route)
        assert len(needed) == 1, f"{route.path} declares no role"
        want = Role.ADMIN if route.path in ADMIN_ONLY else Role.VOLUNTEER
        assert needed == {f"need_{want.value}"}, route.path


def test_admin_covers_volunteer_and_not_the_other_way() -> None:
    assert Role.ADMIN.allows(Role.VOLUNTEER)
    assert Role.ADMIN.allows(Role.ADMIN)
    assert Role.VOLUNTEER.allows(Role.VOLUNTEER)
    assert not Role.VOLUNTEER.allows(Role.ADMIN)
