"""Starts real kiosk services in the test's event loop, with scene cameras and mock pins."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory

from broker.local import LocalBroker
from hardware.decoders import make_decoder
from hardware.gpio import GpioBuzzer, GpioLights
from hardware.recording import ManualButton
from hardware.replay import SceneCamera
from kiosk.core import Deps, Devices, Kiosk, open_kiosk
from kiosk.devices import DeviceMaker
from kiosk.feedback import Signal
from kiosk.settings import KioskSettings, SceneCameraSettings
from kiosk.walkup import Mode

PINS = {"red": 17, "green": 27, "blue": 22, "buzzer": 23}


@dataclass
class KioskUnderTest:
    """A running kiosk and the handles a test drives it with."""

    kiosk: Kiosk
    button: ManualButton
    pins: MockFactory
    task: asyncio.Task[None]

    @property
    def camera(self) -> SceneCamera:
        """The camera the kiosk reads now (central's config may have reopened it)."""
        camera = self.kiosk.scans.camera
        assert isinstance(camera, SceneCamera)
        return camera

    def mode(self) -> Mode:
        """The walk-up state the kiosk is in now."""
        return self.kiosk.walkup.mode

    def pin(self, name: str) -> bool:
        """Whether the named output pin (where the kiosk has it now) is high right now."""
        return bool(self.pins.pin(getattr(self.kiosk.reconfigure.pins, name)).state)

    async def until_signal(self, signal: Signal, *, after: int = 0, within: float = 10) -> int:
        """Wait until ``signal`` is shown (at history index ≥ ``after``); its index."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            history = self.kiosk.player.history
            for index in range(after, len(history)):
                if history[index] is signal:
                    return index
            await asyncio.sleep(0.01)
        raise AssertionError(f"{signal} not shown; history {self.kiosk.player.history[after:]}")

    async def step_away(self) -> None:
        """The member leaves: nothing in view for longer than the debounce gap."""
        self.camera.clear()
        await asyncio.sleep(self.kiosk.settings.debounce_s + 0.1)

    async def show(self, code: str, signal: Signal, *, within: float = 10) -> int:
        """Hold ``code`` up to the camera and wait for the pattern it earns."""
        mark = len(self.kiosk.player.history)
        self.camera.show(code, frames=10)
        return await self.until_signal(signal, after=mark, within=within)


async def until(predicate: Callable[[], bool], within: float = 10) -> None:
    """Wait (polling) until ``predicate()`` holds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running_kiosk(
    kiosk_id: str,
    broker: LocalBroker,
    state_dir: Path,
    *,
    decoder: str = "zxing-cpp",
    **settings: Any,
) -> AsyncIterator[KioskUnderTest]:
    """A real kiosk service on ``broker``, stopped (as by SIGTERM) when the block ends."""
    pins = MockFactory()
    camera = SceneCamera(fps=30)
    button = ManualButton()
    devices = Devices(
        camera=camera,
        decoder=make_decoder(decoder),  # type: ignore[arg-type]
        lights=GpioLights(PINS["red"], PINS["green"], PINS["blue"], pin_factory=pins),
        buzzer=GpioBuzzer(PINS["buzzer"], pin_factory=pins),
        button=button,
    )
    config = KioskSettings(
        kiosk_id=kiosk_id,
        state_dir=state_dir,
        mqtt_port=broker.port,
        camera=SceneCameraSettings(),
        **settings,
    )
    ready = asyncio.Event()
    # Rebuilt devices (new config) land on the same mock pins, as on a Pi's header.
    maker = DeviceMaker(config, pin_factory=pins)
    kiosk = await open_kiosk(config, Deps(devices=devices, ready=ready, rebuild=maker))
    task = asyncio.create_task(kiosk.run(), name=kiosk_id)
    try:
        await asyncio.wait_for(ready.wait(), 15)
        yield KioskUnderTest(kiosk, button, pins, task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await kiosk.outbox.close()
