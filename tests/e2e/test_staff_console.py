"""The staff console in a real browser: a volunteer's day at the desk, an admin's switch and
an admin enrolling a kiosk by holding its camera up to the console.

Debian's chromium driven by Playwright; staff sign in with the link their invitation mailed
to a real SMTP server (aiosmtpd). Kiosks are real kiosk services (in this loop, or as a
process started from nothing for zero-touch enrolment); labels are printed to PDF, rasterised
by poppler's pdftoppm and read back by the project's decoder.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from broker.local import LocalBroker
from hardware.zxing import ZxingDecoder
from kiosk.feedback import Signal
from provisioning import pki
from tests.conftest import RunningCentral, backend_settings, seed_library, start_central
from tests.e2e.test_enrolment import stopping, wait_for_text
from tests.support.browser import AUTHENTICATOR, CHROMIUM, chromium, shots_dir
from tests.support.fleet import code_images, kiosk_from_bundle, secure_fleet
from tests.support.kiosks import running_kiosk, until
from tests.support.members import Inbox, smtp_server

playwright_api = pytest.importorskip("playwright.async_api")

LAPTOP = {"width": 1280, "height": 900}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def staff_invited(
    central: RunningCentral, inbox: Inbox | None, email: str, name: str, role: str
) -> str:
    """Invite through the admin API (as ``cs-admin staff invite``); the link they receive."""
    answer = await central.admin.post(
        "/staff-accounts/invite",
        json={"email": email, "name": name, "role": role, "mail": inbox is not None},
    )
    assert answer.status_code == 201, answer.text
    return inbox.link_for(email) if inbox is not None else str(answer.json()["link"])


def label_from_pdf(pdf: bytes, work: Path) -> list[str]:
    """What the project's decoder reads off the printed label sheet (300 dpi, as printed)."""
    (work / "label.pdf").write_bytes(pdf)
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "150",
            "-png",
            "-singlefile",
            str(work / "label.pdf"),
            str(work / "sheet"),
        ],
        check=True,
    )
    sheet = np.asarray(Image.open(work / "sheet.png").convert("L"), dtype=np.uint8)
    return ZxingDecoder().decode(sheet)


async def wait_ok(page: Any) -> str:
    """The console's answer to the form just sent, once it says it succeeded."""
    await page.wait_for_selector('#status[data-ok="yes"]')
    return str(await page.inner_text("#status"))


async def test_a_volunteer_adds_prints_and_watches_a_checkout_and_an_admin_switches_checkout_off(
    browser: Any, tmp_path: Path, broker: LocalBroker
) -> None:
    shots = shots_dir(tmp_path)
    with smtp_server() as (inbox, smtp_port):
        async with backend_settings("sqlite", tmp_path, broker, smtp_port=smtp_port) as plain:
            # Browsed as localhost (a name, as a passkey's relying party needs).
            origin = f"http://localhost:{plain.admin_port}"
            settings = plain.model_copy(update={"console_origin": origin})
        async with start_central(settings) as central:
            await seed_library(central.admin)
            async with (
                running_kiosk("KIOSK-A1", broker, tmp_path / "a1", debounce_s=0.4) as a1,
                running_kiosk("KIOSK-B1", broker, tmp_path / "b1", debounce_s=0.4) as b1,
            ):
                await until(lambda: a1.kiosk.config is not None and b1.kiosk.config is not None)
                link = await staff_invited(central, inbox, "vera@example.org", "Vera", "volunteer")
                context = await browser.new_context(viewport=LAPTOP)
                try:
                    await volunteer_day(context, central, a1, origin, link, shots, tmp_path)
                finally:
                    await context.close()

                link = await staff_invited(central, inbox, "ada@example.org", "Ada", "admin")
                context = await browser.new_context(viewport=LAPTOP)
                try:
                    page = await context.new_page()
                    await page.goto(link)
                    await page.goto(f"{origin}/staff/ops")
                    marks = [len(k.kiosk.player.history) for k in (a1, b1)]
                    await page.select_option("#flag-form select[name=mode]", "off")
                    await page.fill("#flag-form input[name=reason]", "stocktake")
                    await page.check("#flag-form input[name=confirm]")
                    await page.click("#flag-form button")
                    assert "2 kiosks told" in await wait_ok(page)
                    # Every kiosk's idle light turns magenta: returns only.
                    for kiosk, mark in zip((a1, b1), marks, strict=True):
                        await kiosk.until_signal(Signal.CHECKOUT_OFF, after=mark, within=15)
                    await page.reload()
                    assert await page.inner_text("#flag-mode") == "off"
                    await page.screenshot(path=str(shots / "console-ops.png"), full_page=True)
                finally:
                    await context.close()
            audit = (await central.admin.get("/audit", params={"limit": 1000})).json()
            assert any(
                r["action"] == "rollout.flag_set" and r["actor"] == "admin:Ada" for r in audit
            )


async def volunteer_day(
    context: Any,
    central: RunningCentral,
    kiosk: Any,
    origin: str,
    link: str,
    shots: Path,
    work: Path,
) -> None:
    """Sign in by link then passkey, add an item, print its label, see a checkout live,
    close a repair ticket, be refused an admin's action."""
    page = await context.new_page()
    await page.goto(link)
    assert page.url == f"{origin}/staff/"
    # A passkey for this laptop (Chromium's virtual authenticator), then sign in with it alone.
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    await page.goto(f"{origin}/staff/signin")
    await page.click("#passkey-add")
    await page.wait_for_selector("#passkey-status:text-is('✓')")
    async with page.expect_navigation():
        await page.click("header button[type=submit]")  # sign out
    assert "cs_staff" not in {c["name"] for c in await context.cookies()}
    await page.goto(f"{origin}/staff/signin")
    await page.screenshot(path=str(shots / "console-signin.png"))
    await page.click("#passkey-signin")
    await page.wait_for_url(f"{origin}/staff/")
    assert "Vera (volunteer)" in await page.inner_text("header")
    await page.wait_for_selector('#kiosks tr[data-kiosk="KIOSK-A1"] .state[data-state="online"]')
    await page.screenshot(path=str(shots / "console-fleet.png"), full_page=True)

    # Add an item from the Library page.
    await page.goto(f"{origin}/staff/library")
    await page.fill("#add-item input[name=item_id]", "HAMMER-01")
    await page.fill("#add-item input[name=name]", "Claw hammer")
    await page.select_option("#add-item select[name=shelf_id]", "SHELF-A")
    await page.click("#add-item button")
    assert "HAMMER-01 added" in await wait_ok(page)

    # Its label, printed: the PDF decodes to the code central holds for it.
    await page.goto(f"{origin}/staff/library?q=hammer")
    href = await page.get_attribute('[data-item="HAMMER-01"] a.label', "href")
    printed = await page.request.get(f"{origin}{href}")
    assert printed.headers["content-type"] == "application/pdf"
    codes = label_from_pdf(await printed.body(), work)
    current = (await central.admin.get("/items/HAMMER-01/label")).json()["code"]
    assert codes == [current]
    await page.wait_for_selector("body[data-live]", state="attached")

    # The live feed in a second tab; a member checks the hammer out at a kiosk.
    live = await context.new_page()
    await live.goto(f"{origin}/staff/live")
    await live.wait_for_selector("body[data-live]", state="attached")
    member_pass = (await central.admin.post("/members/M-1001/passes", json={})).json()["code"]
    await kiosk.show(member_pass, Signal.SESSION_OPENED, within=15)
    await kiosk.step_away()
    await kiosk.show(codes[0], Signal.CHECKED_OUT, within=15)  # the printed label, accepted
    await kiosk.step_away()
    mark = len(kiosk.kiosk.player.history)
    kiosk.button.press()  # "done": the session ends, the kiosk goes back to idle
    await kiosk.until_signal(Signal.IDLE, after=mark)
    row = live.locator('#feed tr[data-reason="CHECKED_OUT"]')
    await row.wait_for(timeout=15_000)
    text = await row.inner_text()
    assert "KIOSK-A1" in text
    assert "Claw hammer" in text
    assert "M-1001" not in text  # member ids shortened
    assert "M-…01" in text
    assert member_pass not in await live.content()  # never a code's text
    # The library tab flips without a reload.
    await page.wait_for_selector(
        '[data-item="HAMMER-01"] .state[data-state="checked_out"]', timeout=15_000
    )
    # ... and says who has it, which the availability message alone does not carry.
    await page.wait_for_function(
        """() => document.querySelector('[data-item="HAMMER-01"] .who').textContent === 'M-1001'""",
        timeout=15_000,
    )
    await page.screenshot(path=str(shots / "console-library.png"), full_page=True)
    # The charts catch up within their 10 s refresh: three scans this minute.
    await live.wait_for_selector('#chart-scans svg[data-total="3"]', timeout=15_000)
    await live.screenshot(path=str(shots / "console-live.png"), full_page=True)

    # A repair ticket (the rake came back bent) closed from the Circulation page.
    opened = await central.admin.post("/tickets", json={"item_id": "RAKE-01", "note": "bent tines"})
    assert opened.status_code == 201, opened.text
    ticket = opened.json()["ticket_id"]
    await page.goto(f"{origin}/staff/circulation")
    assert "Claw hammer" in await page.inner_text("#loans")
    await page.screenshot(path=str(shots / "console-circulation.png"), full_page=True)
    await page.click(f'#tickets tr[data-ticket="{ticket}"] button')
    assert f"ticket {ticket} closed" in await wait_ok(page)
    assert (await central.admin.get("/tickets")).json() == []
    assert (await central.admin.get("/items/RAKE-01")).json()["state"] == "available"

    # An admin's action from a volunteer's session: refused on the server, and audited.
    token = await page.get_attribute('meta[name="csrf"]', "content")
    refused = await page.request.post(
        f"{origin}/staff/kill",
        form={"reason": "just looking", "confirm": "yes"},
        headers={"X-CSRF-Token": token, "Origin": origin},
    )
    assert refused.status == 403
    ops = await page.goto(f"{origin}/staff/ops")
    assert ops is not None
    assert ops.status == 403
    assert "Operations" not in await live.inner_text("header nav")
    audit = (await central.admin.get("/audit", params={"limit": 500})).json()
    assert any(r["action"] == "staff.refused" and r["actor"] == "staff:Vera" for r in audit)
    vias = [r["detail"]["via"] for r in audit if r["action"] == "staff.signin"]
    assert sorted(vias) == ["link", "passkey"]
    flag = (await central.admin.get("/rollout/flag")).json()
    assert flag["mode"] != "off"


def screen_frame(png: bytes) -> Image.Image:
    """A laptop screen region as a kiosk's 640x480 camera sees it held up to it."""
    screen = Image.open(io.BytesIO(png)).convert("L")
    scale = min(470 / screen.height, 630 / screen.width)
    screen = screen.resize(
        (round(screen.width * scale), round(screen.height * scale)), Image.Resampling.BILINEAR
    )
    frame = Image.new("L", (640, 480), 90)  # the room behind the laptop
    frame.paste(screen, ((640 - screen.width) // 2, (480 - screen.height) // 2))
    return frame


@pytest.mark.slow
async def test_an_admin_enrols_a_kiosk_by_showing_the_consoles_qr_to_its_camera(
    browser: Any, tmp_path: Path
) -> None:
    shots = shots_dir(tmp_path)
    async with secure_fleet(tmp_path, https=True) as fleet:
        await seed_library(fleet.central.admin)
        link = await staff_invited(fleet.central, None, "ada@example.org", "Ada", "admin")
        context = await browser.new_context(viewport=LAPTOP, ignore_https_errors=True)
        try:
            page = await context.new_page()
            await page.goto(link)
            # Over HTTPS the staff cookie is Secure as well as HttpOnly and SameSite=Strict.
            (cookie,) = [c for c in await context.cookies() if c["name"] == "cs_staff"]
            assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (
                True,
                True,
                "Strict",
            )
            await page.wait_for_selector("body[data-live]", state="attached")
            await page.fill("#enrol input[name=kiosk_id]", "KIOSK-Z1")
            await page.fill("#enrol input[name=shelf_id]", "SHELF-A")
            await page.click("#enrol button")
            await wait_ok(page)
            await page.wait_for_selector("#enrol-qr svg")
            await page.screenshot(path=str(shots / "console-enrol.png"), full_page=True)
            # The camera sees the screen: a screenshot of the console's enrolment panel.
            shown = await page.locator("#enrol").screenshot()
            frames_dir = tmp_path / "frames"
            images = code_images(frames_dir, {})
            screen = frames_dir / "screen.png"
            screen_frame(shown).save(screen)
            frames = [images["blank"]] * 30 + [screen] * 10 + [images["blank"]] * 300
            claim_env = {
                "CS_KIOSK_CLAIM_URL": fleet.url,
                "CS_KIOSK_CLAIM_CA": str(fleet.tls_dir / pki.CA_CERT),
            }
            log = tmp_path / "fresh.log"
            with stopping(kiosk_from_bundle(tmp_path / "fresh", None, frames, log, **claim_env)):
                await wait_for_text(log, "enrolled as KIOSK-Z1 by QR", within=40)
                # The fleet page, never reloaded, shows the new kiosk online.
                await page.wait_for_selector(
                    '#kiosks tr[data-kiosk="KIOSK-Z1"] .state[data-state="online"]',
                    timeout=40_000,
                )
                await page.screenshot(path=str(shots / "console-enrolled.png"), full_page=True)
        finally:
            await context.close()
        audit = (await fleet.central.admin.get("/audit", params={"limit": 500})).json()
        assert any(r["action"] == "kiosk.enrol_code" and r["actor"] == "staff:Ada" for r in audit)
