"""What the browser tests share: Debian's chromium through Playwright, the passkey, screenshots."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Chromium's virtual authenticator over CDP: a phone's platform passkey, user verified.
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def shots_dir(tmp_path: Path) -> Path:
    """README screenshots when asked (CS_SCREENSHOTS=1), else the test's temp dir."""
    shots = SHOTS if os.environ.get("CS_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    return shots


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """Debian's chromium, launched by Playwright (never ``playwright install``)."""
    from playwright.async_api import async_playwright  # only the browser tests need it

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()
