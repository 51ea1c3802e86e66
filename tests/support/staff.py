"""The staff console in tests: staff signed in through their e-mailed link, CSRF from pages."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx

from tests.conftest import RunningCentral

CSRF = re.compile(r'<meta name="csrf" content="([^"]+)"')


async def invite(central: RunningCentral, email: str, name: str, role: str) -> str:
    """Invite a staff member through the admin API; the one-time link handed back."""
    answer = await central.admin.post(
        "/staff-accounts/invite", json={"email": email, "name": name, "role": role, "mail": False}
    )
    answer.raise_for_status()
    return str(answer.json()["link"])


@contextlib.asynccontextmanager
async def staff_client(
    central: RunningCentral, email: str, name: str, role: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client signed in to the console as a new staff member."""
    link = await invite(central, email, name, role)
    base = link.split("/staff/", 1)[0]
    async with httpx.AsyncClient(base_url=base, timeout=10, headers={"Origin": base}) as client:
        followed = await client.get(link)
        assert followed.status_code == 303, followed.text
        assert "cs_staff" in client.cookies
        yield client


async def csrf(client: httpx.AsyncClient, path: str = "/staff/") -> str:
    """The CSRF token a console page carries for this session."""
    page = await client.get(path, headers={"Accept": "text/html"})
    found = CSRF.search(page.text)
    assert found is not None, page.text[:300]
    return found.group(1)
