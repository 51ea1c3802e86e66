"""What the console is built from, and how it borrows the admin API's services per request."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TypeVar, cast

from central.clock import Clock
from central.console.gate import Staff
from central.console.pulse import Pulse
from central.consumer import Consumer
from central.services.refusals import Refusal, RefusedError
from central.services.staff import StaffAccounts
from central.storage.base import Store
from central.web.credentials import SqlHooks
from central.web.live import Hub
from central.web.mail import Mailer

_S = TypeVar("_S")


@dataclasses.dataclass(frozen=True)
class ConsoleParts:
    """What the console is built from: central's store, services, live hub and samplers."""

    store: Store
    hooks: SqlHooks
    services: Mapping[type, object]
    consumer: Consumer
    hub: Hub
    pulse: Pulse
    clock: Clock
    staff: StaffAccounts
    mailer: Mailer | None
    members_origin: str


def for_staff(services: Mapping[type, object], kind: type[_S], staff: Staff) -> _S:
    """The admin API's own service of ``kind``, acting as ``staff`` (audited by name)."""
    service = services.get(kind)
    if service is None:
        raise RefusedError(Refusal.CONFLICT, "not available on this central")
    if dataclasses.is_dataclass(service) and any(
        f.name == "actor" for f in dataclasses.fields(service)
    ):
        return cast(_S, dataclasses.replace(service, actor=staff.actor))  # type: ignore[type-var]
    return cast(_S, service)
