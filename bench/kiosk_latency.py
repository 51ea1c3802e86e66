"""From a code entering a kiosk's camera view to its LEDs changing, with every part real.

    python -m bench.kiosk_latency [--scans 300] [--decoder zxing-cpp] [--far] [--out FILE]

A real Mosquitto and a real central (SQLite) run here; one kiosk runs with a 30 fps scene
camera, the real decoder and gpiozero LEDs on mock pins. Each sample puts a code into
view at a random moment between frames (as a member would) and stops the clock when the
LED pins switch to the verdict's pattern (the first scan opens a session; the first
label checks the item out, later ones are refused as held: each is a full round trip).

``--far`` shows each code as a camera pair would see it far off: 3 px a module in a
1728x1296 full-resolution frame, 1.1 px in the 640x480 scanning frame, so every read
takes the pipeline's closer look at the full frame.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
from gpiozero.pins.mock import MockFactory
from PIL import Image

from broker.local import LocalBroker, free_port
from central.service import Deps as CentralDeps
from central.service import run as run_central
from central.settings import CentralSettings
from hardware.decoders import make_decoder
from hardware.gpio import GpioBuzzer, GpioLights
from hardware.interfaces import Capture
from hardware.recording import ManualButton
from hardware.replay import SceneCamera
from hardware.synthetic import render_code
from kiosk.core import Deps, Devices, open_kiosk
from kiosk.feedback import STEADY, Signal
from kiosk.settings import KioskSettings, SceneCameraSettings
from testkit.security import LIMITS_OFF


async def seed_library(settings: CentralSettings) -> tuple[str, str]:
    """A one-item library through the admin API; (pass code, label code)."""
    token = (settings.data_dir / "admin.token").read_text().strip()
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{settings.admin_port}",
        headers={"Authorization": f"Bearer {token}"},
    ) as admin:
        await admin.post("/shelves", json={"shelf_id": "SHELF-A", "name": "Bench"})
        await admin.post(
            "/kiosks",
            json={"kiosk_id": "KIOSK-A1", "shelf_id": "SHELF-A", "session_timeout_s": 3600},
        )
        await admin.post(
            "/members", json={"member_id": "M-1", "name": "Ada", "checkout_limit": 100}
        )
        await admin.post(
            "/items", json={"item_id": "ITEM-1", "shelf_id": "SHELF-A", "name": "Drill"}
        )
        issued = (await admin.post("/members/M-1/passes", json={"ttl_s": 3600})).json()
        label = (await admin.get("/items/ITEM-1/label")).json()["code"]
    return str(issued["code"]), str(label)


def far_capture(text: str) -> Capture:
    """``text`` at 3 px a module in a 1728x1296 frame, and that frame's 640x480 average."""
    full = render_code(text, width=1728, height=1296, module_px=3, angle=20.0)
    lores = Image.fromarray(full).resize((640, 480), Image.Resampling.BOX)
    return Capture(np.asarray(lores, dtype=np.uint8), full)


async def measure(scans: int, decoder: str, seed: int, far: bool = False) -> list[float]:
    """Seconds from "in view" to "LED shows the verdict", one per scan."""
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="cs-kiosk-latency-"))
    broker = LocalBroker(root / "broker").start()
    settings = CentralSettings(
        instance_id="bench-central",
        data_dir=root / "central",
        mqtt_port=broker.port,
        admin_port=free_port(),
        **LIMITS_OFF,
    )
    ready = asyncio.Event()
    central = asyncio.create_task(run_central(settings, CentralDeps(ready=ready)))
    samples: list[float] = []
    try:
        await asyncio.wait_for(ready.wait(), 30)
        pass_code, label = await seed_library(settings)
        shown: asyncio.Queue[tuple[float, Signal]] = asyncio.Queue()

        def journal(_kiosk_id: str, kind: str, text: str) -> None:
            # The kiosk's journal names each pattern as the LEDs switch to it.
            if kind == "pattern":
                shown.put_nowait((time.perf_counter(), Signal(text.split(":", 1)[0])))

        pins = MockFactory()
        camera = SceneCamera(fps=30)
        devices = Devices(
            camera=camera,
            decoder=make_decoder(decoder),  # type: ignore[arg-type]
            lights=GpioLights(17, 27, 22, pin_factory=pins),
            buzzer=GpioBuzzer(23, pin_factory=pins),
            button=ManualButton(),
        )
        kiosk_settings = KioskSettings(
            kiosk_id="KIOSK-A1",
            state_dir=root / "kiosk",
            mqtt_port=broker.port,
            camera=SceneCameraSettings(),
            debounce_s=0.3,
        )
        kiosk_ready = asyncio.Event()
        kiosk = await open_kiosk(
            kiosk_settings, Deps(devices=devices, ready=kiosk_ready, journal=journal)
        )
        kiosk_task = asyncio.create_task(kiosk.run())
        await asyncio.wait_for(kiosk_ready.wait(), 15)
        views = {code: far_capture(code) for code in (pass_code, label)} if far else {}
        for index in range(scans + 1):
            code = pass_code if index == 0 else label
            await asyncio.sleep(0.4 + rng.random() / 30)  # out of view past the debounce gap
            while not shown.empty():
                shown.get_nowait()
            start = time.perf_counter()
            if far:
                camera.show_capture(views[code], frames=15)
            else:
                camera.show(code, frames=15)
            while True:
                at, signal = await asyncio.wait_for(shown.get(), 10)
                if signal not in STEADY:  # the verdict's pattern, whatever it says
                    break
            camera.clear()
            if index > 0:  # the first opens the session; the rest alternate out and back
                samples.append(at - start)
        kiosk_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await kiosk_task
        await kiosk.outbox.close()
    finally:
        central.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await central
        broker.stop()
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    """Run and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.kiosk_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scans", type=int, default=300)
    parser.add_argument("--decoder", choices=["zxing-cpp", "pyzbar"], default="zxing-cpp")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--far", action="store_true", help="codes only the full-resolution frame can read"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    samples = asyncio.run(measure(args.scans, args.decoder, args.seed, args.far))
    q = statistics.quantiles(samples, n=100, method="inclusive")
    frame = 1000 / 30
    table = (
        "| decoder | view | scans | p50 ms | p95 ms | p99 ms | max ms | p95 in frames (33.3 ms) |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"| {args.decoder} | {'far (full frame)' if args.far else 'near'} | {len(samples)} "
        f"| {q[49] * 1e3:.1f} | {q[94] * 1e3:.1f} |"
        f" {q[98] * 1e3:.1f} | {max(samples) * 1e3:.1f} | {q[94] * 1e3 / frame:.1f} |"
    )
    command = "python -m bench.kiosk_latency " + " ".join(sys.argv[1:] if argv is None else argv)
    text = f"{table}\n\nCommand: `{command}`\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
