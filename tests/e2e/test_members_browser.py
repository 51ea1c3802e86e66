"""The members' app in a real browser: passkey sign-in, a kiosk reading the pass, live pages.

Debian's chromium driven by Playwright (never ``playwright install``); passkeys through
Chromium's virtual authenticator over CDP. The kiosk's camera is fed the browser's own
screenshots, so what is tested is what a phone screen shows.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import segno
from PIL import Image

from broker.local import LocalBroker
from hardware.interfaces import Frame
from hardware.zbar import ZbarDecoder
from hardware.zxing import ZxingDecoder
from kiosk.feedback import Signal
from tests.conftest import RunningCentral
from tests.support.browser import AUTHENTICATOR, CHROMIUM, chromium, shots_dir
from tests.support.kiosks import KioskUnderTest, running_kiosk
from tests.support.members import ShiftedClock, members_central, smtp_server

playwright_api = pytest.importorskip("playwright.async_api")

PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")


def frame_of(png: bytes, brightness: float = 1.0) -> Frame:
    """A phone screenshot as the kiosk's 640x480 camera sees it: held up, screen filling it."""
    screen = Image.open(io.BytesIO(png)).convert("L")
    scale = 470 / screen.height
    screen = screen.resize((round(screen.width * scale), 470), Image.Resampling.BILINEAR)
    pixels = np.asarray(screen, dtype=np.float32) * brightness
    frame = np.full((480, 640), 90, dtype=np.uint8)  # the room behind the phone
    top, left = 5, (640 - screen.width) // 2
    frame[top : top + screen.height, left : left + screen.width] = pixels.astype(np.uint8)
    return frame


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def test_member_walk_passkey_pass_kiosk_loans_and_live_catalogue(
    browser: object, tmp_path: Path, broker: LocalBroker
) -> None:
    shots = shots_dir(tmp_path)
    # Central's clock runs with the browser's (the page computes codes from real time),
    # and is moved on by hand for "a minute later".
    clock = ShiftedClock()
    with smtp_server() as (inbox, smtp_port):
        async with (
            members_central("sqlite", tmp_path, broker, smtp_port, clock) as (central, origin),
            running_kiosk("KIOSK-A1", broker, tmp_path / "kiosk") as kiosk,
        ):
            await central.admin.post("/members/M-1001/invite", json={"email": "ada@example.org"})
            link = inbox.link_for("ada@example.org")
            saw = (await central.admin.get("/items/SAW-01/label")).json()["code"]

            context = await browser.new_context(  # type: ignore[attr-defined]
                viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
            )
            try:
                await walk(context, central, kiosk, clock, origin, link, saw, shots)
            finally:
                await context.close()


async def steady_shot(page: Any) -> tuple[str, bytes]:
    """The code on screen and a screenshot of it, never straddling a 30 s rotation."""
    while True:
        before = await page.get_attribute("#pass", "data-code")
        png = await page.screenshot()
        if before and before == await page.get_attribute("#pass", "data-code"):
            return before, png


async def walk(
    context: Any,
    central: RunningCentral,
    kiosk: KioskUnderTest,
    clock: ShiftedClock,
    origin: str,
    link: str,
    saw: str,
    shots: Path,
) -> None:
    """The issue's "done when" walk, in one browser context."""
    await context.clock.install()
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {"options": AUTHENTICATOR},
    )

    # First visit by the invitation link, then a passkey for this phone.
    await page.goto(link)
    assert page.url.endswith("/pass")
    await page.click("#passkey-add")
    # (Locators, not string predicates: the pages' CSP forbids eval, as it should.)
    await page.wait_for_selector("#passkey-status:text-is('✓')")
    async with page.expect_navigation():
        await page.click("header button[type=submit]")  # sign out
    assert "cs_member" not in {c["name"] for c in await context.cookies()}
    await page.goto(f"{origin}/signin")
    await page.screenshot(path=str(shots / "signin.png"))

    # Signing in again with the passkey alone.
    await page.click("#passkey-signin")
    await page.wait_for_url(f"{origin}/pass")

    # The catalogue, in a second tab that stays open (no reload from here on).
    catalogue = await context.new_page()
    await catalogue.goto(f"{origin}/")
    jigsaw = catalogue.locator('[data-item="SAW-01"] .state')
    assert await jigsaw.get_attribute("data-state") == "available"
    await catalogue.wait_for_selector("body[data-live]", state="attached")

    # My pass, as the phone shows it.
    await page.wait_for_selector("#pass canvas")
    await page.wait_for_selector("body[data-live]", state="attached")
    shown, screenshot = await steady_shot(page)
    await page.screenshot(path=str(shots / "pass.png"))
    frame = frame_of(screenshot)
    # Large on the phone, so a kiosk reads it at arm's length: the code spans nearly the
    # screen's width, 7 CSS px or more a module (about 1.15 mm at a phone's 0.16 mm CSS px,
    # within the 0.9-1.5 mm the decoder corpus holds passes on phones at).
    drawn = await page.eval_on_selector("#pass canvas", "c => c.getBoundingClientRect().width")
    modules = int(segno.make_qr(shown, mode="alphanumeric", error="m").symbol_size(border=4)[0])
    assert drawn >= 0.85 * PHONE["width"]
    assert drawn / modules >= 7
    # The project's decoders read the pass off the screen, dimmed too.
    assert shown in ZxingDecoder().decode(frame)
    assert shown in ZbarDecoder().decode(frame)
    assert shown in ZxingDecoder().decode(frame_of(screenshot, brightness=0.4))

    mark = len(kiosk.kiosk.player.history)
    kiosk.camera.show_frame(frame, frames=10)
    await kiosk.until_signal(Signal.SESSION_OPENED, after=mark, within=30)
    await kiosk.step_away()
    await kiosk.show(saw, Signal.CHECKED_OUT, within=30)
    await kiosk.step_away()
    # The phone, still on My pass, says in words what the kiosk answered.
    await page.wait_for_selector("#after-scan:has-text('Jigsaw checked out, due')")

    # The catalogue tab flips without a reload; My loans lists the jigsaw.
    await catalogue.wait_for_selector(
        '[data-item="SAW-01"] .state[data-state="checked_out"]', timeout=30_000
    )
    await catalogue.screenshot(path=str(shots / "catalogue.png"))
    await page.goto(f"{origin}/loans")
    assert "Jigsaw" in await page.inner_text("main")
    await page.screenshot(path=str(shots / "loans.png"))

    # Offline: the pass page loads from the service worker and makes fresh codes
    # (the phone's clock moves one step on; central accepts one step ahead).
    await page.goto(f"{origin}/pass")
    await page.wait_for_selector("#pass canvas")
    await page.evaluate("async () => { await navigator.serviceWorker.ready; }")
    await context.set_offline(True)
    await page.reload()
    await page.wait_for_selector("#pass canvas")
    await page.clock.fast_forward(30_000)
    await page.wait_for_selector(f'#pass[data-code]:not([data-code="{shown}"])')
    _, offline = await steady_shot(page)
    mark = len(kiosk.kiosk.player.history)
    kiosk.camera.show_frame(frame_of(offline), frames=10)
    await kiosk.until_signal(Signal.SESSION_OPENED, after=mark, within=30)
    await kiosk.step_away()

    # The first screenshot, shown a minute later, is refused EXPIRED.
    clock.advance(61)
    mark = len(kiosk.kiosk.player.history)
    kiosk.camera.show_frame(frame, frames=10)
    await kiosk.until_signal(Signal.REFUSED_CODE, after=mark, within=30)
    audit = (await central.admin.get("/audit", params={"limit": 20})).json()
    scans = [row["reason"] for row in audit if row["action"] == "scan.code"]
    assert scans[-1] == "EXPIRED", scans
