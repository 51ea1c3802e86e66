"""Does a phone-screen rendering of My pass scan? The project's decoders on browser screenshots.

    .venv/bin/python -m bench.members_pass [--shot docs/screenshots/pass.png]

The screenshot is the members' app's pass page as Chromium renders it at phone size
(390x844 CSS px, 2x; ``CS_SCREENSHOTS=1 pytest tests/e2e/test_members_browser.py``
refreshes it). It is placed in the kiosk's 640x480 grey scanning frame with the phone
screen ``height`` pixels tall (nearer or farther) and its pixels scaled by ``brightness``
(a dimmed phone screen), then read by zxing-cpp, zbar and the kiosk's scan pipeline.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from hardware.interfaces import Frame
from hardware.pipeline import ScanPipeline
from hardware.zbar import ZbarDecoder
from hardware.zxing import ZxingDecoder

HEIGHTS = (470, 360, 280, 220, 180)
BRIGHTNESS = (1.0, 0.6, 0.4, 0.25, 0.15)


def phone_frame(png: bytes, height: int = 470, brightness: float = 1.0) -> Frame:
    """A phone screenshot as the kiosk's 640x480 camera sees it, screen ``height`` px tall."""
    screen = Image.open(io.BytesIO(png)).convert("L")
    width = round(screen.width * height / screen.height)
    screen = screen.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(screen, dtype=np.float32) * brightness
    frame = np.full((480, 640), 90, dtype=np.uint8)  # the room behind the phone
    top, left = (480 - height) // 2, (640 - width) // 2
    frame[top : top + height, left : left + width] = pixels.astype(np.uint8)
    return frame


def main() -> int:
    """Print the read table for one screenshot."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shot", type=Path, default=Path("docs/screenshots/pass.png"))
    args = parser.parse_args()
    png = args.shot.read_bytes()
    truth = [t for t in ZxingDecoder().decode(phone_frame(png)) if t.startswith("CS1.D.")]
    assert truth, "no pass code in the screenshot"
    decoders: dict[str, ZxingDecoder | ZbarDecoder | ScanPipeline] = {
        "zxing-cpp": ZxingDecoder(),
        "zbar": ZbarDecoder(),
        "pipeline": ScanPipeline(),
    }
    print(f"code: {len(truth[0])} characters, alphanumeric mode")
    print("| screen height px | brightness | " + " | ".join(decoders) + " |")
    print("|---|---|" + "---|" * len(decoders))
    for height in HEIGHTS:
        for brightness in BRIGHTNESS:
            frame = phone_frame(png, height, brightness)
            cells = ["read" if truth[0] in d.decode(frame) else "-" for d in decoders.values()]
            print(f"| {height} | {brightness:.2f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
