"""Runs the system on one machine and walks a member through checkout, reuse and return.

Mosquitto and central run as real processes (central on its embedded SQLite); kiosks run
here with cameras fed real QR images and gpiozero LEDs on mock pins, so every step the
console shows went through the real decoder, broker, consumer and database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import segno
from PIL import Image

from broker.local import LocalBroker, free_port
from hardware.interfaces import Frame
from hardware.recording import ManualButton
from hardware.replay import SceneCamera
from hardware.zxing import ZxingDecoder
from kiosk.core import Deps, Devices, Kiosk, open_kiosk
from kiosk.settings import KioskSettings, SceneCameraSettings

SHELVES = [("SHELF-A", "Power tools"), ("SHELF-B", "Garden")]
ITEMS = [
    ("DRILL-01", "SHELF-A", "Cordless drill"),
    ("SAW-01", "SHELF-A", "Jigsaw"),
    ("SANDER-01", "SHELF-A", "Orbital sander"),
    ("RAKE-01", "SHELF-B", "Leaf rake"),
    ("SHEARS-01", "SHELF-B", "Hedge shears"),
]
MEMBERS = [("M-1001", "Ada", 3), ("M-1002", "Grace", 3)]
KIOSKS = [("KIOSK-A1", "SHELF-A"), ("KIOSK-A2", "SHELF-A"), ("KIOSK-B1", "SHELF-B")]

_COLOURS = {
    "scan": "\033[36m",
    "verdict": "\033[1m",
    "pattern": "\033[35m",
    "availability": "\033[33m",
    "state": "\033[2m",
    "config": "\033[2m",
    "button": "\033[36m",
    "step": "\033[1;32m",
}


class Console:
    """Prints what happens, as it happens, one line per event."""

    def __init__(self, colour: bool) -> None:
        self._colour = colour
        self._availability: dict[str, str] = {}
        self.notes: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()

    def line(self, who: str, kind: str, text: str) -> None:
        """Print one event."""
        stamp = datetime.now().strftime("%H:%M:%S.%f")[:-3]  # local time, for people
        start, end = (_COLOURS.get(kind, ""), "\033[0m") if self._colour else ("", "")
        print(f"{stamp}  {who:<9} {start}{kind:<12} {text}{end}", flush=True)

    def journal(self, kiosk_id: str, kind: str, text: str) -> None:
        """The kiosks' journal: availability once per change, everything else as it comes."""
        if kind == "availability":
            item = text.split(" is ", maxsplit=1)[0]
            if self._availability.get(item) == text:
                return
            self._availability[item] = text
            kiosk_id = "broker"
        if kind not in {"config"}:
            self.line(kiosk_id, kind, text)
        self.notes.put_nowait((kiosk_id, kind, text))


def code_image(code: str, path: Path) -> Path:
    """Write ``code`` as a PNG QR image, as a printer or phone screen would show it."""
    segno.make_qr(code, error="m").save(str(path), scale=6, border=4)
    return path


def frame_from_image(path: Path, size: tuple[int, int] = (640, 480)) -> Frame:
    """What a 640x480 camera sees with the image held up in the middle."""
    picture = np.asarray(Image.open(path).convert("L"), dtype=np.uint8)
    canvas = np.full((size[1], size[0]), 180, dtype=np.uint8)
    h, w = min(picture.shape[0], size[1]), min(picture.shape[1], size[0])
    top, left = (size[1] - h) // 2, (size[0] - w) // 2
    canvas[top : top + h, left : left + w] = picture[:h, :w]
    return canvas


class Demo:
    """Everything the walk-through runs, and how it stops."""

    def __init__(self, root: Path, console: Console) -> None:
        self.root = root
        self.console = console
        self.broker = LocalBroker(root / "broker")
        self.central: subprocess.Popen[bytes] | None = None
        self.admin_port = free_port()
        self.members_port = free_port()
        self.kiosks: dict[str, tuple[Kiosk, SceneCamera, ManualButton]] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def start_central(self) -> None:
        """Central as its own process, as systemd would run it."""
        env = dict(
            os.environ,
            CS_CENTRAL_DATA_DIR=str(self.root / "central"),
            CS_CENTRAL_MQTT_PORT=str(self.broker.port),
            CS_CENTRAL_ADMIN_PORT=str(self.admin_port),
            # The members' app on plain HTTP: localhost is a secure context for passkeys.
            CS_CENTRAL_MEMBERS_APP="1",
            CS_CENTRAL_MEMBERS_PORT=str(self.members_port),
            CS_CENTRAL_MEMBERS_ORIGIN=self.members_origin,
        )
        log = (self.root / "central.log").open("ab")
        self.central = subprocess.Popen(
            [sys.executable, "-m", "central"], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    @property
    def members_origin(self) -> str:
        """Where a person opens the members' app."""
        return f"http://localhost:{self.members_port}"

    async def admin(self) -> httpx.AsyncClient:
        """An admin API client, once central answers."""
        token_file = self.root / "central" / "admin.token"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.central is not None
            if self.central.poll() is not None:
                raise RuntimeError(f"central exited; see {self.root / 'central.log'}")
            if token_file.exists():
                client = httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{self.admin_port}",
                    timeout=10,
                    headers={"Authorization": f"Bearer {token_file.read_text().strip()}"},
                )
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health")).status_code == 200:
                        return client
                await client.aclose()
            await asyncio.sleep(0.1)
        raise RuntimeError("central did not start in 30 s")

    async def seed(self, admin: httpx.AsyncClient) -> None:
        """The sample library, through the admin API as an admin would."""
        for shelf_id, name in SHELVES:
            (
                await admin.post("/shelves", json={"shelf_id": shelf_id, "name": name})
            ).raise_for_status()
        for item_id, shelf_id, name in ITEMS:
            (
                await admin.post(
                    "/items", json={"item_id": item_id, "shelf_id": shelf_id, "name": name}
                )
            ).raise_for_status()
        for member_id, name, limit in MEMBERS:
            (
                await admin.post(
                    "/members", json={"member_id": member_id, "name": name, "checkout_limit": limit}
                )
            ).raise_for_status()
        for kiosk_id, shelf_id in KIOSKS:
            (
                await admin.post(
                    "/kiosks",
                    json={"kiosk_id": kiosk_id, "shelf_id": shelf_id, "session_timeout_s": 30},
                )
            ).raise_for_status()

    async def start_kiosk(self, group: asyncio.TaskGroup, kiosk_id: str) -> None:
        """One simulated kiosk: scene camera, real decoder, gpiozero LEDs on mock pins."""
        from gpiozero.pins.mock import MockFactory

        from hardware.gpio import GpioBuzzer, GpioLights

        factory = MockFactory()
        camera = SceneCamera(fps=30)
        button = ManualButton()
        devices = Devices(
            camera=camera,
            decoder=ZxingDecoder(),
            lights=GpioLights(17, 27, 22, pin_factory=factory),
            buzzer=GpioBuzzer(23, pin_factory=factory),
            button=button,
        )
        settings = KioskSettings(
            kiosk_id=kiosk_id,
            state_dir=self.root / kiosk_id,
            mqtt_port=self.broker.port,
            camera=SceneCameraSettings(),
        )
        ready = asyncio.Event()
        kiosk = await open_kiosk(
            settings, Deps(devices=devices, journal=self.console.journal, ready=ready)
        )
        self.kiosks[kiosk_id] = (kiosk, camera, button)
        self.tasks.append(group.create_task(kiosk.run(), name=kiosk_id))
        await asyncio.wait_for(ready.wait(), 15)

    async def show(self, kiosk_id: str, image: Path, expect: str = "verdict") -> str:
        """Hold ``image`` up to a kiosk's camera until it answers."""
        _, camera, _ = self.kiosks[kiosk_id]
        camera.show_frame(frame_from_image(image), frames=15)
        return await self._wait(kiosk_id, expect)

    async def press_done(self, kiosk_id: str) -> str:
        """Press a kiosk's "done" button."""
        self.kiosks[kiosk_id][2].press()
        return await self._wait(kiosk_id, "verdict")

    async def _wait(self, kiosk_id: str, kind: str) -> str:
        async with asyncio.timeout(15):
            while True:
                who, what, text = await self.console.notes.get()
                if who == kiosk_id and what == kind:
                    # Let the pattern play out before the next step, as a member would.
                    await asyncio.sleep(0.8)
                    return text

    def stop(self) -> None:
        """Stop central (SIGTERM, as systemd does) and the broker."""
        if self.central is not None and self.central.poll() is None:
            self.central.send_signal(signal.SIGTERM)
            try:
                self.central.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.central.kill()
        self.broker.stop()


async def walkthrough(demo: Demo, admin: httpx.AsyncClient, codes_dir: Path) -> list[str]:
    """The member's visit; the verdict texts, in order."""
    say = demo.console.line
    pass_code = (await admin.post("/members/M-1001/passes", json={})).json()["code"]
    pass_png = code_image(pass_code, codes_dir / "pass-M-1001.png")
    labels = {}
    for item_id in ("DRILL-01", "SAW-01"):
        code = (await admin.get(f"/items/{item_id}/label")).json()["code"]
        labels[item_id] = code_image(code, codes_dir / f"label-{item_id}.png")
    say("demo", "step", f"QR images written to {codes_dir}")
    verdicts = []
    say("demo", "step", "1. Ada shows her pass at KIOSK-A1")
    verdicts.append(await demo.show("KIOSK-A1", pass_png))
    say("demo", "step", "2. She scans the cordless drill and the jigsaw")
    verdicts.append(await demo.show("KIOSK-A1", labels["DRILL-01"]))
    verdicts.append(await demo.show("KIOSK-A1", labels["SAW-01"]))
    say("demo", "step", '3. She presses "done"')
    verdicts.append(await demo.press_done("KIOSK-A1"))
    say("demo", "step", "4. Someone tries the same pass again at KIOSK-A2")
    verdicts.append(await demo.show("KIOSK-A2", pass_png))
    say("demo", "step", "5. A week later the drill comes back: one scan at KIOSK-A2")
    verdicts.append(await demo.show("KIOSK-A2", labels["DRILL-01"]))
    grace_code = (await admin.post("/members/M-1002/passes", json={})).json()["code"]
    grace_png = code_image(grace_code, codes_dir / "pass-M-1002.png")
    say("demo", "step", "6. Grace wants the jigsaw Ada still has: she scans it at KIOSK-A2")
    verdicts.append(await demo.show("KIOSK-A2", grace_png))
    verdicts.append(await demo.show("KIOSK-A2", labels["SAW-01"]))
    verdicts.append(await demo.press_done("KIOSK-A2"))
    say("demo", "step", "7. Ada brings the jigsaw back at KIOSK-A1: it goes on the hold shelf")
    verdicts.append(await demo.show("KIOSK-A1", labels["SAW-01"]))
    items = {i["item_id"]: i["state"] for i in (await admin.get("/items")).json()}
    say("demo", "step", "Central's view: " + ", ".join(f"{k} {v}" for k, v in items.items()))
    return verdicts


async def amain(root: Path, *, once: bool, colour: bool) -> int:
    """Run everything; after the walk-through keep running until Ctrl-C (or stop if ``once``)."""
    console = Console(colour)
    demo = Demo(root, console)
    demo.broker.start()
    console.line("demo", "step", f"mosquitto on 127.0.0.1:{demo.broker.port}")
    try:
        demo.start_central()
        admin = await demo.admin()
        console.line("demo", "step", f"central up, admin API on 127.0.0.1:{demo.admin_port}")
        await demo.seed(admin)
        invited = (await admin.post("/members/M-1001/invite", json={})).json()
        console.line("demo", "step", f"members' app on {demo.members_origin}")
        console.line("demo", "step", f"Ada's sign-in link (once, 20 min): {invited['link']}")
        async with asyncio.TaskGroup() as group:
            for kiosk_id, _ in KIOSKS:
                await demo.start_kiosk(group, kiosk_id)
            await walkthrough(demo, admin, root / "codes")
            await admin.aclose()
            if not once:
                console.line("demo", "step", "walk-through done; kiosks idle. Ctrl-C stops.")
                await asyncio.Event().wait()
            console.line("demo", "step", "walk-through done; stopping")
            for task in demo.tasks:
                task.cancel()
    finally:
        for kiosk, _, _ in demo.kiosks.values():
            await kiosk.outbox.close()
        demo.stop()
        console.line("demo", "step", "everything stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``cs-demo``: run the walk-through."""
    parser = argparse.ArgumentParser(prog="cs-demo", description=__doc__)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("var/demo"),
        help="where the demo keeps its broker, database and QR images (wiped at start)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="stop after the walk-through instead of waiting for Ctrl-C",
    )
    args = parser.parse_args(argv)
    root = args.data_dir.resolve()
    if root.exists():
        shutil.rmtree(root)
    (root / "codes").mkdir(parents=True)
    # The console shows what people need; the services' own logs go to a file.
    logging.basicConfig(filename=root / "kiosks.log", level=logging.INFO, force=True)

    async def runner() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await amain(root, once=args.once, colour=sys.stdout.isatty())
        except asyncio.CancelledError:
            return 0

    return asyncio.run(runner())
