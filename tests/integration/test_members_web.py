"""The members' app's doors: sign-in links, passkeys, CSRF, rate limits, whose loans one reads."""

from __future__ import annotations

import base64
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from broker import topics
from broker.local import LocalBroker, free_port
from broker.messages import CodeScan, Reason
from central.clock import FakeClock
from central.tokens import STEP_S, device_mac
from provisioning import pki
from testkit.probe import Probe
from tests.conftest import RunningCentral
from tests.integration.test_admin_cli import run_cli, token_file_of, url_of
from tests.support.authenticator import SoftPasskey
from tests.support.members import Inbox, csrf_of, members_central, signed_in, smtp_server
from tests.support.scans import ask


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
    clock = FakeClock(datetime.now(UTC))
    async with members_central(request.param, tmp_path, broker, smtp[1], clock) as (central, url):
        yield App(central, url, smtp[0], clock)


def reason(response: httpx.Response) -> str:
    return str(response.json()["detail"]["reason"])


async def anonymous(app: App) -> tuple[httpx.AsyncClient, str]:
    """A fresh browser on the sign-in page, and its pre-sign-in CSRF token."""
    client = httpx.AsyncClient(base_url=app.origin, timeout=10)
    page = await client.get("/signin")
    return client, csrf_of(page.text)


async def test_a_sign_in_link_works_once(app: App) -> None:
    await app.central.admin.post("/members/M-1001/invite", json={"email": "ada@example.org"})
    link = app.inbox.link_for("ada@example.org")
    first = httpx.AsyncClient(timeout=10)
    assert (await first.get(link)).status_code == 303
    assert (await first.get(f"{app.origin}/loans")).status_code == 200  # signed in
    second = httpx.AsyncClient(timeout=10)
    again = await second.get(link)
    assert (again.status_code, reason(again)) == (400, "BAD_LINK")
    assert (await second.get(f"{app.origin}/loans")).status_code == 303  # to /signin
    await first.aclose()
    await second.aclose()


async def test_email_sign_in_sends_only_to_members_and_is_rate_limited(app: App) -> None:
    await app.central.admin.patch("/members/M-1001", json={})  # Ada exists, not invited yet
    await app.central.admin.post("/members/M-1001/invite", json={"email": "ada@example.org"})
    client, pre = await anonymous(app)

    async def ask_link(email: str) -> int:
        sent = await client.post("/signin/email", data={"email": email, "csrf": pre})
        return sent.status_code

    # The same answer for a stranger as for a member (no account probing); three links an
    # address, then a brake on that address...
    assert [await ask_link("nobody@example.org") for _ in range(4)] == [303, 303, 303, 429]
    assert await ask_link("ADA@example.org ") == 303
    # ...and on this client, whatever addresses it tries next.
    answers = [await ask_link(f"x{n}@example.org") for n in range(6)]
    assert answers == [303] * 5 + [429]
    limited = await client.post("/signin/email", data={"email": "y@example.org", "csrf": pre})
    assert (limited.status_code, reason(limited)) == (429, "RATE_LIMITED")
    recipients = [to for to, _ in app.inbox.messages]
    assert recipients == ["ada@example.org", "ada@example.org"]  # the invitation, the link
    await client.aclose()


async def test_writes_without_the_csrf_token_or_from_another_origin_are_refused(
    app: App,
) -> None:
    client = await signed_in(app.central, app.origin, app.inbox, "M-1001", "ada@example.org")
    token = csrf_of((await client.get("/pass")).text)
    missing = await client.post("/devices")
    assert (missing.status_code, reason(missing)) == (403, "BAD_CSRF")
    wrong = await client.post("/devices", headers={"X-CSRF-Token": "x" * 43})
    assert (wrong.status_code, reason(wrong)) == (403, "BAD_CSRF")
    foreign = await client.post(
        "/devices", headers={"X-CSRF-Token": token, "Origin": "https://evil.example"}
    )
    assert (foreign.status_code, reason(foreign)) == (403, "BAD_CSRF")
    ok = await client.post("/devices", headers={"X-CSRF-Token": token})
    assert ok.status_code == 200
    # Before sign-in, the double-submit token guards the e-mail form the same way.
    stranger = httpx.AsyncClient(base_url=app.origin, timeout=10)
    forged = await stranger.post("/signin/email", data={"email": "a@b.c", "csrf": "guess"})
    assert (forged.status_code, reason(forged)) == (403, "BAD_CSRF")
    await client.aclose()
    await stranger.aclose()


async def test_oversized_bodies_and_control_characters_are_refused_before_any_page(
    app: App,
) -> None:
    client, pre = await anonymous(app)
    # A NUL in an address would reach PostgreSQL as an error (a 500); refused, not echoed.
    nul = await client.post("/signin/email", data={"email": "ada\x00@example.org", "csrf": pre})
    assert (nul.status_code, reason(nul)) == (400, "BAD_INPUT")
    assert "example.org" not in nul.text
    bidi = await client.post("/signin/email", data={"email": "\u202eada@example.org", "csrf": pre})
    assert (bidi.status_code, reason(bidi)) == (400, "BAD_INPUT")
    # A body no form or passkey answer needs is cut off unread, whatever it holds.
    huge = await client.post("/signin/email", content=b"email=" + b"a" * (65 * 1024))
    assert (huge.status_code, huge.json()["reason"]) == (413, "TOO_LARGE")
    escape = await client.get("/signin/link/%1b%5b2J")
    assert (escape.status_code, escape.json()["reason"]) == (400, "CONTROL_CHARACTERS")
    # The app keeps serving everyone else.
    assert (await client.get("/")).status_code == 200
    await client.aclose()


async def registered_passkey(app: App) -> SoftPasskey:
    client = await signed_in(app.central, app.origin, app.inbox, "M-1001", "ada@example.org")
    csrf = {"X-CSRF-Token": csrf_of((await client.get("/pass")).text)}
    options = (await client.post("/passkeys/options", headers=csrf)).json()
    passkey = SoftPasskey("localhost", app.origin)
    registered = await client.post(
        "/passkeys",
        headers=csrf,
        json={"challenge": options["challenge"], "credential": passkey.register(options)},
    )
    assert registered.status_code == 200, registered.text
    await client.aclose()
    return passkey


async def login(
    client: httpx.AsyncClient, pre: str, challenge: str, credential: object
) -> httpx.Response:
    return await client.post(
        "/signin/passkey",
        headers={"X-CSRF-Token": pre},
        json={"challenge": challenge, "credential": credential},
    )


async def challenge_of(client: httpx.AsyncClient, pre: str) -> str:
    options = await client.post("/signin/passkey/options", headers={"X-CSRF-Token": pre})
    return str(options.json()["challenge"])


async def test_passkey_sign_in_refuses_bad_assertions_and_replayed_challenges(app: App) -> None:
    passkey = await registered_passkey(app)
    client, pre = await anonymous(app)

    # A signature that does not verify.
    challenge = await challenge_of(client, pre)
    tampered = passkey.sign_in(challenge)
    signature = bytearray(base64.urlsafe_b64decode(tampered["response"]["signature"] + "=="))
    signature[-1] ^= 1
    tampered["response"]["signature"] = base64.urlsafe_b64encode(signature).decode().rstrip("=")
    bad = await login(client, pre, challenge, tampered)
    assert (bad.status_code, reason(bad)) == (400, "BAD_ASSERTION")
    # The challenge was spent by that attempt: a good assertion on it is still refused.
    replayed = await login(client, pre, challenge, passkey.sign_in(challenge))
    assert (replayed.status_code, reason(replayed)) == (400, "BAD_CHALLENGE")
    # A challenge central never issued.
    invented = await login(client, pre, "A" * 43, passkey.sign_in("A" * 43))
    assert (invented.status_code, reason(invented)) == (400, "BAD_CHALLENGE")
    # Signed for another site (a phishing page relaying the challenge).
    challenge = await challenge_of(client, pre)
    phished = await login(
        client, pre, challenge, passkey.sign_in(challenge, origin="https://evil.example")
    )
    assert (phished.status_code, reason(phished)) == (400, "BAD_ASSERTION")
    assert "cs_member" not in client.cookies

    challenge = await challenge_of(client, pre)
    good = await login(client, pre, challenge, passkey.sign_in(challenge))
    assert good.status_code == 200, good.text
    assert (await client.get("/loans")).status_code == 200
    await client.aclose()


async def test_passkey_sign_in_is_rate_limited(app: App) -> None:
    client, pre = await anonymous(app)
    codes = [
        (await client.post("/signin/passkey/options", headers={"X-CSRF-Token": pre})).status_code
        for _ in range(12)
    ]
    assert codes[:10] == [200] * 10
    assert codes[-1] == 429
    await client.aclose()


async def test_a_member_reads_only_their_own_loans(app: App, probe: Probe) -> None:
    ada = await signed_in(app.central, app.origin, app.inbox, "M-1001", "ada@example.org")
    grace = await signed_in(app.central, app.origin, app.inbox, "M-1002", "grace@example.org")
    # Ada borrows the jigsaw with her phone's pass.
    device = (
        await ada.post("/devices", headers={"X-CSRF-Token": csrf_of((await ada.get("/pass")).text)})
    ).json()
    step = int(app.clock.now().timestamp()) // STEP_S
    body = f"CS1.D.{device['kid']}.M-1001.{device['device_id']}.{_b36(step)}"
    code = f"{body}.{device_mac(base64.b64decode(device['secret']), body)}"
    saw = (await app.central.admin.get("/items/SAW-01/label")).json()["code"]
    probe.subscribe(topics.verdict("KIOSK-A1"))
    for text in (code, saw):
        await ask(
            probe,
            CodeScan(
                event_id=uuid.uuid4().hex,
                kiosk_id="KIOSK-A1",
                code=text,
                scanned_at=app.clock.now(),
            ),
        )
    assert [loan["item"] for loan in (await ada.get("/api/loans")).json()] == ["Jigsaw"]
    assert "Jigsaw" in (await ada.get("/loans")).text
    # Grace sees none of it, whatever she asks for.
    assert (await grace.get("/api/loans")).json() == []
    assert (await grace.get("/api/loans", params={"member_id": "M-1001"})).json() == []
    assert "Jigsaw" not in (await grace.get("/loans")).text
    nobody = httpx.AsyncClient(base_url=app.origin, timeout=10)
    refused = await nobody.get("/api/loans")
    assert (refused.status_code, reason(refused)) == (401, "NOT_SIGNED_IN")
    # The public catalogue shows the jigsaw as checked out, without signing in.
    catalogue = (await nobody.get("/", params={"q": "jig"})).text
    assert 'data-state="checked_out"' in catalogue
    for client in (ada, grace, nobody):
        await client.aclose()
    assert Reason.CHECKED_OUT  # the verdicts themselves are covered in test_members_pass


def _b36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


async def test_staff_invite_a_member_with_cs_admin(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--url", url_of(app.central), "--token-file", str(token_file_of(app.central))]
    mailed = await run_cli(capsys, [*base, "member", "invite", "M-1002", "--email", "g@ex.org"])
    assert mailed.code == 0, mailed.err
    assert "sent" in mailed.out
    client = httpx.AsyncClient(timeout=10)
    assert (await client.get(app.inbox.link_for("g@ex.org"))).status_code == 303
    assert "Grace" in (await client.get(f"{app.origin}/pass")).text
    # Without an address the link is printed, for staff to hand over (a card, a screen).
    printed = await run_cli(capsys, [*base, "--json", "member", "invite", "M-1001"])
    assert printed.code == 0, printed.err
    link = json.loads(printed.out)["link"]
    other = httpx.AsyncClient(timeout=10)
    assert (await other.get(link)).status_code == 303
    assert "Ada" in (await other.get(f"{app.origin}/pass")).text
    unknown = await run_cli(capsys, [*base, "member", "invite", "M-9999"])
    assert unknown.code != 0
    await client.aclose()
    await other.aclose()


async def test_served_over_https_the_cookies_are_secure_httponly_samesite(
    tmp_path: Path, broker: LocalBroker, smtp: tuple[Inbox, int]
) -> None:
    ca_dir, tls_dir = tmp_path / "ca", tmp_path / "tls"
    pki.init_ca(ca_dir)
    pki.issue_server(ca_dir, tls_dir, ["localhost", "127.0.0.1"])
    port = free_port()
    async with (
        members_central(
            "sqlite",
            tmp_path,
            broker,
            smtp[1],
            members_port=port,
            members_origin=f"https://localhost:{port}",
            members_tls_cert=tls_dir / pki.SERVER_CERT,
            members_tls_key=tls_dir / pki.SERVER_KEY,
        ) as (central, origin),
        httpx.AsyncClient(
            base_url=origin, verify=ssl.create_default_context(cafile=str(tls_dir / pki.CA_CERT))
        ) as client,
    ):
        assert origin.startswith("https://")
        page = await client.get("/signin")
        cookie = page.headers["set-cookie"].lower()
        assert "secure" in cookie
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        invited = await central.admin.post("/members/M-1001/invite", json={})
        signed = await client.get(invited.json()["link"].removeprefix(origin))
        session = signed.headers["set-cookie"].lower()
        assert session.startswith("cs_member=")
        assert {"secure", "httponly", "samesite=strict"} <= {
            part.strip() for part in session.split(";")
        }
        # Plain HTTP to the same port is not served.
        with pytest.raises(httpx.HTTPError):
            await httpx.AsyncClient().get(f"http://localhost:{port}/signin")


async def test_pages_speak_english_or_french_and_label_their_controls(app: App) -> None:
    client = httpx.AsyncClient(base_url=app.origin, timeout=10)
    english = (await client.get("/")).text
    french = (await client.get("/", headers={"Accept-Language": "fr-FR,fr;q=0.9"})).text
    assert '<html lang="en">' in english
    assert "Search by name" in english
    assert '<html lang="fr">' in french
    assert "Rechercher par nom" in french
    assert "Disponible" in french
    assert "Catalogue" in (await client.get("/", params={"lang": "en"})).text
    # Every form control has a label naming it, for screen readers.
    for page in (english, (await client.get("/signin")).text):
        for control in ("q", "shelf", "email"):
            if f'id="{control}"' in page:
                assert f'<label for="{control}">' in page
    await client.aclose()


async def test_a_member_renews_and_holds_from_the_app(app: App, probe: Probe) -> None:
    ada = await signed_in(app.central, app.origin, app.inbox, "M-1001", "ada@example.org")
    grace = await signed_in(app.central, app.origin, app.inbox, "M-1002", "grace@example.org")
    pass_code = (await app.central.admin.post("/members/M-1001/passes", json={})).json()["code"]
    saw = (await app.central.admin.get("/items/SAW-01/label")).json()["code"]
    probe.subscribe(topics.verdict("KIOSK-A1"))
    for text in (pass_code, saw):
        scan = CodeScan(
            event_id=uuid.uuid4().hex, kiosk_id="KIOSK-A1", code=text, scanned_at=app.clock.now()
        )
        await ask(probe, scan)
    loans = await ada.get("/loans")
    assert 'action="/loans/SAW-01/renew"' in loans.text
    renewed = await ada.post("/loans/SAW-01/renew", data={"csrf": csrf_of(loans.text)})
    assert (renewed.status_code, renewed.headers["location"]) == (303, "/loans?said=RENEWED")
    assert "Renewed." in (await ada.get(renewed.headers["location"])).text

    # Grace sees the jigsaw out in the catalogue and joins its waitlist from there.
    catalogue = await grace.get("/", params={"q": "jig"})
    assert 'action="/items/SAW-01/hold"' in catalogue.text
    without = await grace.post("/items/SAW-01/hold", data={"csrf": "forged"})
    assert (without.status_code, reason(without)) == (403, "BAD_CSRF")
    placed = await grace.post("/items/SAW-01/hold", data={"csrf": csrf_of(catalogue.text)})
    assert placed.headers["location"] == "/loans?said=HOLD_PLACED"
    mine = await grace.get("/loans")
    assert "SAW-01: waiting" in mine.text
    # Someone waits: Ada's next renewal is refused, and says why.
    again = await ada.post("/loans/SAW-01/renew", data={"csrf": csrf_of(loans.text)})
    assert again.headers["location"] == "/loans?said=HOLD_WAITING"
    # Grace changes her mind; Ada cannot cancel Grace's hold, Grace can.
    (hold,) = (await app.central.admin.get("/holds", params={"item_id": "SAW-01"})).json()
    stolen = await ada.post(f"/holds/{hold['hold_id']}/cancel", data={"csrf": csrf_of(loans.text)})
    assert stolen.headers["location"] == "/loans?said=NOT_CHECKED_OUT"
    gone = await grace.post(f"/holds/{hold['hold_id']}/cancel", data={"csrf": csrf_of(mine.text)})
    assert gone.headers["location"] == "/loans"
    assert (await app.central.admin.get("/holds", params={"item_id": "SAW-01"})).json() == []
    audit = (await app.central.admin.get("/audit", params={"limit": 100})).json()
    actors = {(row["action"], row["actor"]) for row in audit}
    assert {
        ("loan.renew", "member:M-1001"),
        ("hold.place", "member:M-1002"),
        ("hold.cancel", "member:M-1002"),
    } <= actors
    for client in (ada, grace):
        await client.aclose()
