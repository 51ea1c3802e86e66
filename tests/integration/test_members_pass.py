"""The rotating phone pass through the real broker and central, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from broker import topics
from broker.codes import PASS_KINDS, classify_code
from broker.local import LocalBroker
from broker.messages import CodeScan, Reason, Verdict
from central.clock import FakeClock
from central.tokens import STEP_S, device_mac
from testkit.probe import Probe
from tests.conftest import RunningCentral
from tests.support.members import Inbox, csrf_of, members_central, signed_in, smtp_server
from tests.support.scans import ask


@dataclass
class Phone:
    """What a signed-in page holds: its device credentials, as ``POST /devices`` gave them."""

    member_id: str
    device_id: str
    kid: str
    secret: bytes

    def code(self, at: datetime) -> str:
        """The code the page shows at ``at`` (the same arithmetic as static/pass.js)."""
        step = int(at.timestamp()) // STEP_S
        body = f"CS1.D.{self.kid}.{self.member_id}.{self.device_id}.{_b36(step)}"
        return f"{body}.{device_mac(self.secret, body)}"


def _b36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


@dataclass
class App:
    central: RunningCentral
    origin: str
    inbox: Inbox
    clock: FakeClock


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as running:
        yield running


@pytest.fixture(params=["sqlite", "postgres"])
async def app(
    request: pytest.FixtureRequest, tmp_path: Path, broker: LocalBroker, smtp: tuple[Inbox, int]
) -> AsyncIterator[App]:
    # Central's clock starts at the real time (pages compute codes from it) and is moved
    # by hand, so "60 s later" needs no sleeping.
    clock = FakeClock(datetime.now(UTC))
    async with members_central(request.param, tmp_path, broker, smtp[1], clock) as (central, url):
        yield App(central, url, smtp[0], clock)


async def phone_of(app: App, member_id: str, email: str) -> tuple[httpx.AsyncClient, Phone]:
    client = await signed_in(app.central, app.origin, app.inbox, member_id, email)
    page = await client.get("/pass")
    answer = await client.post("/devices", headers={"X-CSRF-Token": csrf_of(page.text)})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    secret = base64.b64decode(got["secret"])
    return client, Phone(got["member_id"], got["device_id"], got["kid"], secret)


def scan_at(kiosk_id: str, code: str, at: datetime) -> CodeScan:
    return CodeScan(event_id=uuid.uuid4().hex, kiosk_id=kiosk_id, code=code, scanned_at=at)


async def test_a_displayed_code_opens_one_session_even_at_two_kiosks(
    app: App, probe: Probe
) -> None:
    client, phone = await phone_of(app, "M-1001", "ada@example.org")
    probe.subscribe(topics.verdict("KIOSK-A1"))
    probe.subscribe(topics.verdict("KIOSK-B1"))
    code = phone.code(app.clock.now())
    assert classify_code(code) in PASS_KINDS  # the kiosk forwards it as a pass
    opened = await ask(probe, scan_at("KIOSK-A1", code, app.clock.now()))
    assert (opened.reason, opened.member_name) == (Reason.SESSION_OPENED, "Ada")
    again = await ask(probe, scan_at("KIOSK-B1", code, app.clock.now()))
    assert again.reason is Reason.ALREADY_USED
    # The next code the phone shows (30 s on) opens a new session: the pass keeps working.
    app.clock.advance(STEP_S)
    later = await ask(probe, scan_at("KIOSK-B1", phone.code(app.clock.now()), app.clock.now()))
    assert later.reason is Reason.SESSION_OPENED
    await client.aclose()


async def test_a_screenshot_is_refused_expired_a_minute_later(app: App, probe: Probe) -> None:
    client, phone = await phone_of(app, "M-1001", "ada@example.org")
    probe.subscribe(topics.verdict("KIOSK-A1"))
    shot = phone.code(app.clock.now())
    app.clock.advance(61)
    refused = await ask(probe, scan_at("KIOSK-A1", shot, app.clock.now()))
    assert (refused.reason, refused.session_open) == (Reason.EXPIRED, False)
    await client.aclose()


async def test_a_day_offline_the_phone_still_makes_accepted_codes(app: App, probe: Probe) -> None:
    client, phone = await phone_of(app, "M-1001", "ada@example.org")
    await client.aclose()  # nothing more from central: the phone is offline
    probe.subscribe(topics.verdict("KIOSK-A1"))
    app.clock.advance(25 * 3600)
    opened = await ask(probe, scan_at("KIOSK-A1", phone.code(app.clock.now()), app.clock.now()))
    assert opened.reason is Reason.SESSION_OPENED


async def test_revoked_phone_suspended_member_and_forged_codes_open_nothing(
    app: App, probe: Probe
) -> None:
    ada, ada_phone = await phone_of(app, "M-1001", "ada@example.org")
    grace, grace_phone = await phone_of(app, "M-1002", "grace@example.org")
    probe.subscribe(topics.verdict("KIOSK-A1"))

    # Ada stops her phone from the pass page (a form with the page's CSRF token).
    page = await ada.get("/pass")
    stopped = await ada.post(
        f"/devices/{ada_phone.device_id}/revoke", data={"csrf": csrf_of(page.text)}
    )
    assert stopped.status_code == 303
    code = ada_phone.code(app.clock.now())
    revoked = await ask(probe, scan_at("KIOSK-A1", code, app.clock.now()))
    assert (revoked.reason, revoked.session_open) == (Reason.REVOKED, False)

    suspended = await app.central.admin.patch("/members/M-1002", json={"suspended": True})
    suspended.raise_for_status()
    code = grace_phone.code(app.clock.now())
    refused = await ask(probe, scan_at("KIOSK-A1", code, app.clock.now()))
    assert (refused.reason, refused.session_open) == (Reason.MEMBER_SUSPENDED, False)

    # A code for Grace's phone under a secret guessed by someone else.
    forged = Phone("M-1002", grace_phone.device_id, grace_phone.kid, b"\x00" * 32)
    bad = await ask(probe, scan_at("KIOSK-A1", forged.code(app.clock.now()), app.clock.now()))
    assert bad.reason is Reason.BAD_SIGNATURE
    # ...and Grace's own secret cannot make codes for Ada.
    swapped = Phone("M-1001", grace_phone.device_id, grace_phone.kid, grace_phone.secret)
    bad = await ask(probe, scan_at("KIOSK-A1", swapped.code(app.clock.now()), app.clock.now()))
    assert bad.reason is Reason.BAD_SIGNATURE
    await ada.aclose()
    await grace.aclose()


async def test_staff_stop_a_members_phone(app: App, probe: Probe) -> None:
    client, phone = await phone_of(app, "M-1001", "ada@example.org")
    probe.subscribe(topics.verdict("KIOSK-A1"))
    stopped = await app.central.admin.post(f"/members/M-1001/devices/{phone.device_id}/revoke")
    assert stopped.status_code == 200
    verdict: Verdict = await ask(
        probe, scan_at("KIOSK-A1", phone.code(app.clock.now()), app.clock.now())
    )
    assert verdict.reason is Reason.REVOKED
    await client.aclose()
