"""What every admin route depends on: the admin token check, and the services it calls.

The app keeps one instance of each application service in ``app.state.services`` (set by
:func:`central.api.app.create_app`); routes reach them through ``Depends``, so a route
module holds no state of its own.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.params import Depends as DependsParam

from central.services.audit_log import AuditLog
from central.services.browse import Browse
from central.services.circulation import Circulation
from central.services.enrolment import KioskEnrolment
from central.services.fleet_updates import FleetUpdates
from central.services.kiosks import Kiosks
from central.services.library import Library
from central.services.loans import Loans
from central.services.reminders import Reminders
from central.services.rollout_control import RolloutControl
from central.services.security_actions import SecurityActions

_S = TypeVar("_S")


def admin_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """Refuse (401) a request without the admin bearer token."""
    expected = f"Bearer {request.app.state.admin_token}"
    if authorization is None or not hmac.compare_digest(authorization, expected):
        raise HTTPException(401, "admin token required", headers={"WWW-Authenticate": "Bearer"})


# Each admin router is declared with this: the token is attached one way, where it is made.
ADMIN: list[DependsParam] = [Depends(admin_token)]


def provide(app: FastAPI, *services: object) -> None:
    """Make ``services`` the ones this app's routes are handed, one per class."""
    known: dict[type, object] = getattr(app.state, "services", {})
    app.state.services = known | {type(service): service for service in services}


def _service(kind: type[_S]) -> Callable[[Request], _S]:
    def get(request: Request) -> _S:
        # A KeyError here is a wiring fault (a router mounted without its service): a 500.
        return cast(_S, request.app.state.services[kind])

    get.__name__ = f"{kind.__name__.lower()}_service"
    return get


def _depends(kind: type[_S]) -> Any:
    return Depends(_service(kind))


LibraryService = Annotated[Library, _depends(Library)]
KiosksService = Annotated[Kiosks, _depends(Kiosks)]
SecurityService = Annotated[SecurityActions, _depends(SecurityActions)]
LoansService = Annotated[Loans, _depends(Loans)]
RemindersService = Annotated[Reminders, _depends(Reminders)]
AuditService = Annotated[AuditLog, _depends(AuditLog)]
RolloutService = Annotated[RolloutControl, _depends(RolloutControl)]
UpdatesService = Annotated[FleetUpdates, _depends(FleetUpdates)]
EnrolmentService = Annotated[KioskEnrolment, _depends(KioskEnrolment)]
CirculationService = Annotated[Circulation, _depends(Circulation)]
BrowseService = Annotated[Browse, _depends(Browse)]
