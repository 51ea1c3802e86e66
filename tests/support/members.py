"""The members' app in tests: a real SMTP server (aiosmtpd) and a central serving the app."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from broker.local import LocalBroker, free_port
from central.clock import Clock
from tests.conftest import RunningCentral, backend_settings, seed_library, start_central

LINK = re.compile(r"(https?://\S+/signin/link/\S+)")


class Inbox:
    """What the SMTP server received, by recipient."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self._arrived = threading.Condition()

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        body = message_from_bytes(raw).get_payload(decode=True)
        assert isinstance(body, bytes)
        with self._arrived:
            for to in envelope.rcpt_tos:
                self.messages.append((to, body.decode()))
            self._arrived.notify_all()
        return "250 OK"

    def link_for(self, email: str, timeout: float = 10) -> str:
        """The newest sign-in link sent to ``email`` (waits for one)."""
        with self._arrived:
            self._arrived.wait_for(lambda: any(to == email for to, _ in self.messages), timeout)
        bodies = [body for to, body in self.messages if to == email]
        assert bodies, f"no mail for {email}"
        found = LINK.search(bodies[-1])
        assert found is not None
        return found.group(1)


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on a free port."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@contextlib.asynccontextmanager
async def members_central(
    backend: str,
    tmp_path: Path,
    broker: LocalBroker,
    smtp_port: int,
    clock: Clock | None = None,
    **extra: Any,
) -> AsyncIterator[tuple[RunningCentral, str]]:
    """Central with the members' app on, its library seeded; yields it and the app's URL."""
    port = free_port()
    settings_of = {
        "members_app": True,
        "members_port": port,
        "members_origin": f"http://localhost:{port}",
        "smtp_port": smtp_port,
        **extra,
    }
    origin = str(settings_of["members_origin"])
    async with (
        backend_settings(backend, tmp_path, broker, **settings_of) as settings,
        start_central(settings, clock) as central,
    ):
        await seed_library(central.admin)
        yield central, origin


async def signed_in(
    central: RunningCentral, origin: str, inbox: Inbox, member_id: str, email: str
) -> httpx.AsyncClient:
    """A browser-like client signed in as ``member_id`` through a staff invitation link."""
    invited = await central.admin.post(f"/members/{member_id}/invite", json={"email": email})
    invited.raise_for_status()
    client = httpx.AsyncClient(base_url=origin, timeout=10)
    followed = await client.get(inbox.link_for(email))
    assert followed.status_code == 303, followed.text
    assert "cs_member" in client.cookies
    return client


def csrf_of(page: str) -> str:
    """The CSRF token a rendered page carries."""
    found = re.search(r'<meta name="csrf" content="([^"]+)"', page)
    assert found is not None
    return found.group(1)


class ShiftedClock:
    """Real time plus an offset tests move by hand: a browser's clock keeps running."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        """The real time, shifted."""
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._offset += timedelta(seconds=seconds)
