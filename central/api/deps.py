"""What every admin route depends on: the admin token check, and the services it calls.

The app keeps its services in ``app.state`` (set once by :func:`central.api.app.create_app`);
routes reach them through ``Depends``, so a route module holds no state of its own.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from fastapi.params import Depends as DependsParam

from central.services.library import Library


def admin_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """Refuse (401) a request without the admin bearer token."""
    expected = f"Bearer {request.app.state.admin_token}"
    if authorization is None or not hmac.compare_digest(authorization, expected):
        raise HTTPException(401, "admin token required", headers={"WWW-Authenticate": "Bearer"})


# Each admin router is declared with this: the token is attached one way, where it is made.
ADMIN: list[DependsParam] = [Depends(admin_token)]


def library(request: Request) -> Library:
    """The library records service of this central instance."""
    service: Library = request.app.state.library
    return service


LibraryService = Annotated[Library, Depends(library)]
