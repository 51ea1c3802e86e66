"""Applies central's camera and pin settings to a running kiosk, one configuration at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from broker.messages import KioskConfig
from hardware.errors import HardwareError
from kiosk.config import camera_settings, pin_settings
from kiosk.feedback import FeedbackPlayer
from kiosk.parts import Devices, Rebuild
from kiosk.scans import ScanSource
from kiosk.settings import CameraSettings, KioskSettings, PinSettings

log = logging.getLogger(__name__)


class DeviceConfig:
    """Reopens the camera or rewires the pins when a config changes them; says what failed."""

    def __init__(
        self,
        settings: KioskSettings,
        devices: Devices,
        scans: ScanSource,
        player: FeedbackPlayer,
        rebuild: Rebuild | None,
        *,
        on_press: Callable[[], None],
        note: Callable[[str, str], None],
    ) -> None:
        self._settings = settings
        self._devices = devices
        self._scans = scans
        self._player = player
        self.rebuild = rebuild  # without it, new camera settings or pins need a restart
        self._on_press = on_press
        self._note = note
        self.camera_settings = settings.camera
        self.pins = settings.pins
        self.running_version = 0  # the version applied in full, as the status reports it
        self.problem: str | None = None
        self._applying = asyncio.Lock()

    async def apply(self, newest: Callable[[], KioskConfig | None]) -> None:
        """Bring the devices in line with the newest config (read once it is this call's turn)."""
        async with self._applying:  # configs arriving together apply one at a time
            config = newest()
            if config is None:
                return
            camera = camera_settings(self._settings.camera, config.camera)
            pins = pin_settings(self._settings.pins, config.pins)
            problems: list[str | None] = []
            try:
                if camera != self.camera_settings or pins != self.pins:
                    if self.rebuild is None:
                        problems.append("new camera settings or pins need a restart")
                    else:
                        if camera != self.camera_settings:
                            problems.append(await self._reopen_camera(camera, self.rebuild))
                        if pins != self.pins:
                            problems.append(await self._rewire(pins, self.rebuild))
            except Exception as exc:
                # A device that will not come up must not take the kiosk down with it.
                log.exception("applying config v%s failed", config.config_version)
                problems.append(f"{type(exc).__name__}: {exc}")
            self.running_version = config.config_version
            # Cut to what the status message carries.
            self.problem = "; ".join(p for p in problems if p)[:200] or None
            if self.problem:
                log.warning("config v%s: %s", config.config_version, self.problem)

    async def _reopen_camera(self, settings: CameraSettings, rebuild: Rebuild) -> str | None:
        problem = await self._scans.replace_camera(rebuild.camera(settings))
        self.camera_settings = settings
        self._note("config", f"camera reopened: {settings.model_dump_json()}")
        return problem

    async def _rewire(self, pins: PinSettings, rebuild: Rebuild) -> str | None:
        await self._player.close()
        old = self._devices
        old.button.on_press(None)
        for device in (old.lights, old.buzzer, old.button):
            device.close()
        problem = None
        try:
            outputs = rebuild.outputs(pins)
            self.pins = pins
        except HardwareError as exc:
            # Back to the pins that worked, so members still see and hear the kiosk.
            problem = f"pins: {exc}"
            outputs = rebuild.outputs(self.pins)
        old.lights, old.buzzer, old.button = outputs
        self._player.attach(outputs.lights, outputs.buzzer)
        outputs.button.on_press(self._on_press)
        self._note("config", f"pins {self.pins.model_dump_json()}")
        return problem
