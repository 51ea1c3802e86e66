"""One kiosk at work: camera → decoder → walk-up rules → MQTT, verdicts → LEDs and buzzer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, Protocol

import sdnotify

from broker import topics
from broker.errors import ContractError
from broker.messages import (
    Availability,
    CodeScan,
    KioskCommand,
    KioskConfig,
    KioskState,
    SessionDone,
    UpdateOffer,
    Verdict,
    parse_command,
    parse_message,
)
from broker.transport import TlsFiles
from hardware.errors import CameraError, HardwareError
from hardware.interfaces import Button, Buzzer, Camera, Decoder, Lights
from kiosk import __version__
from kiosk.clock import Clock, SystemClock
from kiosk.config import camera_settings, pin_settings, sound
from kiosk.debounce import Debouncer
from kiosk.feedback import SIGNAL_FOR_REASON, FeedbackPlayer, Pattern, Signal
from kiosk.health import FrameStats
from kiosk.mqtt import KioskLink
from kiosk.outbox import Outbox
from kiosk.settings import CameraSettings, KioskSettings, PinSettings
from kiosk.updater import Updater
from kiosk.walkup import Action, Mode, Walkup

log = logging.getLogger(__name__)

# (kiosk id, what happened, a line for people) — the demo prints these.
Journal = Callable[[str, str, str], None]


@dataclass
class Devices:
    """The hardware one kiosk drives."""

    camera: Camera
    decoder: Decoder
    lights: Lights
    buzzer: Buzzer
    button: Button


class Outputs(NamedTuple):
    """The devices on GPIO pins, rebuilt together when the pins change."""

    lights: Lights
    buzzer: Buzzer
    button: Button


class Rebuild(Protocol):
    """Makes new devices when central changes the camera settings or the pins."""

    def camera(self, settings: CameraSettings) -> Camera:
        """A camera (not started) with ``settings``."""

    def outputs(self, pins: PinSettings) -> Outputs:
        """LEDs, buzzer and button on ``pins``; HardwareError if a pin cannot be had."""


@dataclass
class Deps:
    """What ``run`` is handed: devices, a clock, and an optional journal."""

    devices: Devices
    clock: Clock = field(default_factory=SystemClock)
    journal: Journal | None = None
    ready: asyncio.Event | None = None
    rebuild: Rebuild | None = None  # without it, new camera settings or pins need a restart


class Kiosk:
    """The kiosk's moving parts, wired together; ``run`` drives them."""

    def __init__(self, settings: KioskSettings, deps: Deps, outbox: Outbox) -> None:
        self.settings = settings
        self.devices = deps.devices
        self.clock = deps.clock
        self._journal = deps.journal
        self.outbox = outbox
        self.walkup = Walkup(settings.kiosk_id, deps.clock, settings.session_timeout_s)
        self.player = FeedbackPlayer(
            deps.devices.lights, deps.devices.buzzer, deps.clock, on_show=self._shown
        )
        self.player.sound = settings.sound
        self.debouncer = Debouncer(settings.debounce_s)
        self.availability: dict[str, Availability] = {}
        self.config: KioskConfig | None = None  # the newest central sent
        self.running_config = 0  # the version applied in full, as the status reports it
        self.config_problem: str | None = None
        self._rebuild = deps.rebuild
        self._camera_settings = settings.camera
        self._pins = settings.pins
        # Held around every use of the camera, so a reconfiguration never stops it mid-read.
        self._camera_lock = asyncio.Lock()
        self._reconfiguring = asyncio.Lock()
        self._reconfigurations: set[asyncio.Task[None]] = set()
        self.frames = FrameStats()
        self._last_status = 0.0
        self._sent_at: dict[str, float] = {}
        self._last_resend = 0.0
        self._mine: set[str] = set()  # events this run of the kiosk created
        self._waiting: set[str] = set()
        self._ready = deps.ready
        # Built on the loop it will run on (the MQTT link needs it too).
        self._loop = asyncio.get_running_loop()
        # systemd's notify protocol; a no-op when not started by systemd.
        self._systemd = sdnotify.SystemdNotifier()
        self._camera_started = False
        self._announced = False
        self._last_ping = 0.0
        self._main: asyncio.Task[None] | None = None
        self.updater = Updater(settings, self, deps.clock)
        self.link = KioskLink(
            settings.kiosk_id,
            settings.mqtt_host,
            settings.mqtt_port,
            software_version=__version__,
            username=settings.mqtt_username,
            password=settings.mqtt_password.get_secret_value() if settings.mqtt_password else None,
            tls=TlsFiles(settings.mqtt_tls_ca) if settings.mqtt_tls_ca else None,
            on_message=self._on_message,
            on_connection=self._on_connection,
        )

    # -- what fleet updates ask of the kiosk (kiosk/updater.py) -----------------------------

    def idle(self) -> bool:
        """No member mid-session and no scan waiting for central: safe to update."""
        return self.walkup.mode is Mode.IDLE and self.outbox.depth == 0

    def healthy(self) -> bool:
        """Broker connected, camera delivering and frames going through the decoder."""
        return (
            self.walkup.online
            and self.walkup.camera_ok
            and self.frames.fps(self.clock.monotonic()) is not None
        )

    def restart(self) -> None:
        """Stop as on SIGTERM; systemd (Restart=always) starts the launcher again."""
        if self._main is not None:
            self._main.cancel()

    # -- journal ---------------------------------------------------------------------------

    def note(self, kind: str, text: str, event_id: str | None = None) -> None:
        """Tell the journal (the demo's screen) what just happened."""
        log.info(
            "%s %s", kind, text, extra={"kiosk_id": self.settings.kiosk_id, "event_id": event_id}
        )
        if self._journal is not None:
            self._journal(self.settings.kiosk_id, kind, text)

    def _shown(self, pattern: Pattern) -> None:
        self.note("pattern", f"{pattern.signal.value}: {pattern.describe}")

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; leave the LEDs dark and the outbox intact."""
        self.player.start()
        self.player.set_steady(self.walkup.steady())
        self.devices.button.on_press(self._pressed_from_thread)
        self._main = asyncio.current_task()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.link.run(self._status(KioskState.OFFLINE)), name="mqtt")
                try:
                    async with self._camera_lock:
                        await asyncio.to_thread(self.devices.camera.start)
                    self._camera_started = True
                    self._maybe_ready()
                except CameraError as exc:
                    # Keep running: the scan loop reports the fault and keeps reopening.
                    await self._camera_fault(exc)
                group.create_task(self._scan_loop(), name="scan-loop")
                group.create_task(self._ticker(), name="ticker")
                group.create_task(self.updater.run(), name="updater")
        finally:
            self._systemd.notify("STOPPING=1")
            self.devices.button.on_press(None)
            await self.link.close(self._status(KioskState.STOPPED))
            await self.player.close()
            await asyncio.to_thread(self.devices.camera.stop)

    def publish_status(self) -> None:
        """Tell the fleet how this kiosk is (retained): camera health, outbox depth."""
        self._last_status = self.clock.monotonic()
        if self.walkup.online:
            self.link.publish(
                topics.status(self.settings.kiosk_id),
                self._status(KioskState.ONLINE),
                retain=True,
            )

    def _status(self, state: KioskState) -> bytes:
        return self.link.status(
            state,
            self.clock.wall(),
            config_version=self.running_config,
            outbox_depth=self.outbox.depth,
            camera_ok=self.walkup.camera_ok,
            camera_fps=self.frames.fps(self.clock.monotonic()),
            decode_ms=self.frames.decode_ms(),
            update=self.updater.progress,
            config_problem=self.config_problem,
        )

    def _read_codes(self) -> tuple[list[str], float]:
        # One thread hop per frame: read and decode together, off the event loop.
        frame = self.devices.camera.read(self.settings.frame_timeout_s)
        # The decode is real work on this CPU, so it is timed on the real clock.
        started = time.perf_counter()
        codes = self.devices.decoder.decode(frame)
        return codes, time.perf_counter() - started

    async def _scan_loop(self) -> None:
        while True:
            try:
                async with self._camera_lock:
                    codes, decode_s = await asyncio.to_thread(self._read_codes)
            except CameraError as exc:
                await self._camera_fault(exc)
                continue
            self.frames.frame(self.clock.monotonic(), decode_s)
            if not self.walkup.camera_ok:
                self.walkup.camera_ok = True
                self.note("state", "camera back")
                self._refresh_steady()
                self.publish_status()
            now = self.clock.monotonic()
            if now - self._last_ping >= 1.0:
                # From the scan loop itself: if frames stop being read, systemd notices.
                self._last_ping = now
                self._systemd.notify("WATCHDOG=1")
            for code in self.debouncer.fresh(codes, now):
                await self.handle_code(code)

    async def _camera_fault(self, exc: CameraError) -> None:
        if self.walkup.camera_ok:
            self.walkup.camera_ok = False
            self.note("state", f"camera fault: {exc}")
            self._refresh_steady()
            self.publish_status()
        # Reopen the camera: a stalled pipeline usually comes back after a restart.
        async with self._camera_lock:
            with contextlib.suppress(CameraError):
                await asyncio.to_thread(self.devices.camera.stop)
                await asyncio.to_thread(self.devices.camera.start)
        await self.clock.sleep(0.5)

    async def handle_code(self, code: str) -> None:
        """One fresh code from the camera."""
        decision = self.walkup.on_code(code)
        self.note("scan", _short(code), decision.event.event_id if decision.event else None)
        if decision.action is Action.REFUSE:
            assert decision.signal is not None
            self.player.play(decision.signal)
            return
        assert decision.event is not None
        await self._send(decision.event)
        if decision.action is Action.QUEUE:
            assert decision.signal is not None
            self.player.play(decision.signal)

    async def _send(self, event: CodeScan | SessionDone) -> None:
        payload = await self.outbox.put(event)  # durable before it leaves the kiosk
        self._mine.add(event.event_id)
        if self.walkup.online:
            # Someone is standing here waiting for this answer.
            self._sent_at[event.event_id] = self.clock.monotonic()
            self._waiting.add(event.event_id)
            self.link.publish(topics.scan(self.settings.kiosk_id), payload)

    def _pressed_from_thread(self) -> None:
        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self.press_done()))

    async def press_done(self) -> None:
        """The member pressed "done"."""
        event = self.walkup.on_done()
        if event is None:
            return
        self.note("button", "done")
        self._refresh_steady()
        await self._send(event)

    async def _ticker(self) -> None:
        while True:
            await self.clock.sleep(0.1)
            if self.walkup.tick():
                self.note("state", "session timed out")
                self._refresh_steady()
            now = self.clock.monotonic()
            if now - self._last_status >= self.settings.status_every_s:
                self.publish_status()  # a heartbeat: frame rate, decode time, outbox
            for event_id in [
                e
                for e in self._waiting
                if now - self._sent_at.get(e, now) > self.settings.verdict_timeout_s
            ]:
                # The member is still standing here: tell them we could not get an answer.
                # The event stays in the outbox and is re-sent until answered.
                self._waiting.discard(event_id)
                self.player.play(Signal.REFUSED_OFFLINE)
                self.note("state", "no answer from central")
            if (
                self.walkup.online
                and self.outbox.depth
                and now - self._last_resend >= self.settings.resend_every_s
            ):
                # Unanswered events go out again with their original ids: a scan that
                # reached no central (broker restarted, central down) is never stranded,
                # and central answers a repeat with the verdict it already gave.
                self._last_resend = now
                self._loop.create_task(self._resend(min_age=self.settings.resend_every_s))

    def _maybe_ready(self) -> None:
        if self._announced or not (self._camera_started and self.walkup.online):
            return
        self._announced = True
        self._systemd.notify("READY=1")
        self._systemd.notify(f"STATUS=kiosk {self.settings.kiosk_id} scanning")

    def _refresh_steady(self) -> None:
        self.player.set_steady(self.walkup.steady())

    # -- from the broker -------------------------------------------------------------------

    def _on_connection(self, up: bool) -> None:
        self.walkup.online = up
        self.note("state", "online" if up else "offline")
        self._refresh_steady()
        if up:
            self._maybe_ready()
            self.link.publish(
                topics.status(self.settings.kiosk_id), self._status(KioskState.ONLINE), retain=True
            )
            self._loop.create_task(self._resend())
            if self._ready is not None:
                self._ready.set()

    async def _resend(self, min_age: float = 0.0) -> None:
        # The original event ids go out again: central answers each once, however often.
        now = self.clock.monotonic()
        for event_id, payload in await self.outbox.pending():
            if now - self._sent_at.get(event_id, float("-inf")) < min_age:
                continue  # just sent; give central the time to answer
            self._sent_at[event_id] = now
            self.link.publish(topics.scan(self.settings.kiosk_id), payload)

    def _just_scanned(self, payload: bytes) -> bool:
        try:
            data = json.loads(payload)
            scanned_at = datetime.fromisoformat(data["scanned_at"])
        except (ValueError, KeyError, TypeError):
            return False
        if data.get("queued"):
            return False  # the member was already told "queued"
        age = (self.clock.wall() - scanned_at).total_seconds()
        return 0 <= age < self.settings.verdict_timeout_s * 5

    def _on_message(self, topic: str, payload: bytes) -> None:
        if not payload:
            # A cleared retained message: an item moved to another shelf (or a retired
            # kiosk's config). Forget the item; there is nothing else to apply.
            if topic.endswith("/availability"):
                self.availability.pop(topic.split("/")[-2], None)
            return
        try:
            if topic.endswith("/verdict"):
                self._loop.create_task(self._on_verdict(parse_message(Verdict, payload)))
            elif topic.endswith("/availability"):
                self._on_availability(parse_message(Availability, payload))
            elif topic.endswith("/config"):
                self._on_config(parse_message(KioskConfig, payload))
            elif topic.endswith("/command"):
                command = parse_command(payload)
                if isinstance(command, UpdateOffer):
                    self.updater.offer(command)
                elif isinstance(command, KioskCommand) and command.command == "identify":
                    self.player.play(Signal.IDENTIFY)
        except ContractError as exc:
            log.warning("ignored a bad message on %s: %s", topic, exc)

    async def _on_verdict(self, verdict: Verdict) -> None:
        if verdict.kiosk_id != self.settings.kiosk_id:
            return
        payload = await self.outbox.take(verdict.event_id)
        waiting = verdict.event_id in self._waiting or (
            # Scanned moments before this kiosk restarted (power blip, crash): the member
            # is likely still standing here, so show them the answer.
            payload is not None
            and verdict.event_id not in self._mine
            and self._just_scanned(payload)
        )
        self._waiting.discard(verdict.event_id)
        self._mine.discard(verdict.event_id)
        self._sent_at.pop(verdict.event_id, None)
        if payload is None:
            return  # an answer we already had (a redelivery)
        who = f" for {verdict.member_name}" if verdict.member_name else ""
        what = f" {verdict.item_name}" if verdict.item_name else ""
        self.note("verdict", f"{verdict.reason.value}{what}{who}", verdict.event_id)
        self.walkup.on_verdict(verdict)
        if waiting:
            self.player.play(SIGNAL_FOR_REASON[verdict.reason])
        self._refresh_steady()

    def _on_availability(self, availability: Availability) -> None:
        if self.config is not None and availability.shelf_id != self.config.shelf_id:
            return  # a copy still in flight from the shelf this kiosk was moved away from
        current = self.availability.get(availability.item_id)
        if current is not None and current.seq >= availability.seq:
            return  # stale or repeated
        self.availability[availability.item_id] = availability
        self.note(
            "availability",
            f"{availability.name} ({availability.item_id}) is "
            f"{availability.state.value.replace('_', ' ')}",
        )

    def _on_config(self, config: KioskConfig) -> None:
        if config.kiosk_id != self.settings.kiosk_id:
            return
        self.config = config
        self.walkup.session_timeout_s = config.session_timeout_s
        self.walkup.checkout_enabled = config.checkout_enabled
        self.player.sound = sound(self.settings.sound, config.feedback)
        # Moved to another shelf: forget this one's items, hear the new one's.
        self.availability = {
            k: a for k, a in self.availability.items() if a.shelf_id == config.shelf_id
        }
        self.link.follow_shelf(config.shelf_id)
        self._refresh_steady()
        self.note("config", f"shelf {config.shelf_id}, config v{config.config_version}")
        # Kept until done: the loop holds only a weak reference to a task.
        task = self._loop.create_task(self._apply_devices(), name="reconfigure")
        self._reconfigurations.add(task)
        task.add_done_callback(self._reconfigurations.discard)

    async def _apply_devices(self) -> None:
        """Reopen the camera or rebuild the pins if the newest config changes them."""
        async with self._reconfiguring:  # configs arriving together apply one at a time
            config = self.config
            if config is None:
                return
            camera = camera_settings(self.settings.camera, config.camera)
            pins = pin_settings(self.settings.pins, config.pins)
            problems: list[str | None] = []
            try:
                if camera != self._camera_settings or pins != self._pins:
                    if self._rebuild is None:
                        problems.append("new camera settings or pins need a restart")
                    else:
                        if camera != self._camera_settings:
                            problems.append(await self._reopen_camera(camera, self._rebuild))
                        if pins != self._pins:
                            problems.append(await self._rewire(pins, self._rebuild))
            except Exception as exc:
                # A device that will not come up must not take the kiosk down with it.
                log.exception("applying config v%s failed", config.config_version)
                problems.append(f"{type(exc).__name__}: {exc}")
            self.running_config = config.config_version
            # Cut to what the status message carries.
            self.config_problem = "; ".join(p for p in problems if p)[:200] or None
            if self.config_problem:
                log.warning("config v%s: %s", config.config_version, self.config_problem)
            self.publish_status()

    async def _reopen_camera(self, settings: CameraSettings, rebuild: Rebuild) -> str | None:
        async with self._camera_lock:
            await asyncio.to_thread(self.devices.camera.stop)
            self.devices.camera = rebuild.camera(settings)
            self._camera_settings = settings
            self.frames.reset()
            self.note("config", f"camera reopened: {settings.model_dump_json()}")
            try:
                await asyncio.to_thread(self.devices.camera.start)
            except CameraError as exc:
                # The scan loop shows the fault and keeps trying to reopen it.
                return f"camera: {exc}"
        return None

    async def _rewire(self, pins: PinSettings, rebuild: Rebuild) -> str | None:
        await self.player.close()
        old = self.devices
        old.button.on_press(None)
        for device in (old.lights, old.buzzer, old.button):
            device.close()
        problem = None
        try:
            outputs = rebuild.outputs(pins)
            self._pins = pins
        except HardwareError as exc:
            # Back to the pins that worked, so members still see and hear the kiosk.
            problem = f"pins: {exc}"
            outputs = rebuild.outputs(self._pins)
        old.lights, old.buzzer, old.button = outputs
        self.player.attach(outputs.lights, outputs.buzzer)
        outputs.button.on_press(self._pressed_from_thread)
        self.note("config", f"pins {self._pins.model_dump_json()}")
        return problem


def _short(code: str) -> str:
    parts = code.split(".")
    kind = {"P": "member pass", "L": "item label", "E": "enrolment code"}.get(
        parts[1] if len(parts) > 1 else "", "unknown code"
    )
    return f"{kind} {'.'.join(parts[3:4])}…" if len(parts) > 3 else kind


async def open_kiosk(settings: KioskSettings, deps: Deps) -> Kiosk:
    """A kiosk with its outbox opened from its state directory."""
    outbox = await Outbox.open(Path(settings.state_dir) / "outbox.db")
    return Kiosk(settings, deps, outbox)
