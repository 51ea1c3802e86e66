"""Every admin route needs the token, and every request body refuses fields it does not know."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from central.api.app import create_app
from central.clock import SystemClock
from central.consumer import Consumer
from central.keys import KeyFile
from central.mqtt import CentralLink
from central.storage.sqlite import SqliteStore
from central.tokens import TokenSigner
from tests.conftest import RunningCentral

OPEN = {"/health"}


def real_app(tmp_path: Path) -> FastAPI:
    """The admin app as the service builds it, to read its routes from."""
    keys = KeyFile(tmp_path / "keys.json", create=True)
    signer = TokenSigner(keys)
    store = SqliteStore(tmp_path / "central.db")
    link = CentralLink("routes", "127.0.0.1", 1)  # never connected: only its routes are read
    consumer = Consumer(store, signer, SystemClock(), link)
    return create_app(
        store,
        signer,
        SystemClock(),
        link,
        consumer,
        admin_token="unused",
        pass_ttl_s=900,
        keys=keys,
    )


def routes(tmp_path: Path) -> list[tuple[str, str, APIRoute]]:
    """(method, concrete path, route) for every route of the app."""
    out: list[tuple[str, str, APIRoute]] = []
    for prefix, route in _flatten(real_app(tmp_path).routes, ""):
        # Anything that is not an API route (docs pages, static files) would escape the
        # dependency that checks the token.
        assert isinstance(route, APIRoute), f"{route} is not an APIRoute"
        path = re.sub(r"\{[^}]+\}", "KIOSK-A1", prefix + route.path)
        out.extend((method, path, route) for method in sorted(route.methods or ()))
    return out


def _flatten(routes: Sequence[BaseRoute], prefix: str) -> Iterator[tuple[str, BaseRoute]]:
    """Routes with included routers opened up (FastAPI keeps those as one entry each)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is None:
            yield prefix, route
        else:
            yield from _flatten(inner.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]


async def test_every_route_but_health_refuses_a_missing_or_wrong_token(
    central: RunningCentral, tmp_path: Path
) -> None:
    found = routes(tmp_path)
    paths = {path for _, path, _ in found}
    # The enumeration found the routes that matter, not an empty app.
    assert {"/passes/invalidate", "/keys/rotate", "/metrics", "/audit", "/health"} <= paths
    token = central.admin.headers["Authorization"]
    wrong = [None, "Bearer nope", token + "x", token[:-1], token.removeprefix("Bearer "), "Basic x"]
    async with httpx.AsyncClient(base_url=str(central.admin.base_url)) as anonymous:
        for method, path, _ in found:
            for header in wrong:
                headers = {} if header is None else {"Authorization": header}
                response = await anonymous.request(method, path, headers=headers, json={})
                expected = 200 if path in OPEN else 401
                assert response.status_code == expected, (method, path, header)
        for hidden in ("/docs", "/redoc", "/openapi.json"):
            assert (await anonymous.get(hidden)).status_code == 404, hidden


async def test_every_request_body_refuses_unknown_fields(
    central: RunningCentral, tmp_path: Path
) -> None:
    with_body = [(m, p, r) for m, p, r in routes(tmp_path) if r.body_field is not None]
    assert len(with_body) >= 8  # shelves, items, members, kiosks, passes, invalidate, block...
    for method, path, _ in with_body:
        response = await central.admin.request(method, path, json={"sneaky": 1})
        assert response.status_code == 422, (method, path, response.text)
        errors = response.json()["detail"]
        assert {"type": "extra_forbidden", "loc": ["body", "sneaky"]} in [
            {"type": e["type"], "loc": e["loc"]} for e in errors
        ], (path, errors)
