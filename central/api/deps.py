"""What every admin route depends on: the admin token check, and the services it calls.

The app keeps its services in ``app.state`` (set once by :func:`central.api.app.create_app`);
routes reach them through ``Depends``, so a route module holds no state of its own.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from fastapi.params import Depends as DependsParam

from central.services.audit_log import AuditLog
from central.services.enrolment import KioskEnrolment
from central.services.fleet_updates import FleetUpdates
from central.services.kiosks import Kiosks
from central.services.library import Library
from central.services.loans import Loans
from central.services.rollout_control import RolloutControl
from central.services.security_actions import SecurityActions


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


def security_actions(request: Request) -> SecurityActions:
    """The security actions service of this central instance."""
    service: SecurityActions = request.app.state.security_actions
    return service


SecurityService = Annotated[SecurityActions, Depends(security_actions)]


def loans(request: Request) -> Loans:
    """The loans service of this central instance."""
    service: Loans = request.app.state.loans
    return service


LoansService = Annotated[Loans, Depends(loans)]


def audit_log(request: Request) -> AuditLog:
    """The audit log service of this central instance."""
    service: AuditLog = request.app.state.audit_log
    return service


AuditService = Annotated[AuditLog, Depends(audit_log)]


def kiosks(request: Request) -> Kiosks:
    """The fleet service of this central instance."""
    service: Kiosks = request.app.state.kiosks
    return service


KiosksService = Annotated[Kiosks, Depends(kiosks)]


def rollout_control(request: Request) -> RolloutControl:
    """The rollout flag and breaker service of this central instance."""
    service: RolloutControl = request.app.state.rollout_control
    return service


RolloutService = Annotated[RolloutControl, Depends(rollout_control)]


def fleet_updates(request: Request) -> FleetUpdates:
    """The releases and rollouts service of this central instance."""
    service: FleetUpdates = request.app.state.fleet_updates
    return service


UpdatesService = Annotated[FleetUpdates, Depends(fleet_updates)]


def enrolment(request: Request) -> KioskEnrolment:
    """The enrolment service of this central instance."""
    service: KioskEnrolment = request.app.state.enrolment
    return service


EnrolmentService = Annotated[KioskEnrolment, Depends(enrolment)]
