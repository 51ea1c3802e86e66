"""One kiosk at work: scans → walk-up rules → outbox → MQTT, verdicts → LEDs and buzzer.

The parts each own one job: ``ScanSource`` (camera, decoder, debounce), ``Walkup`` (the
state machine), ``Outbox`` (durable events and what is in flight), ``KioskLink`` (MQTT,
routed by the contract), ``FeedbackPlayer`` (LEDs and buzzer). ``Kiosk`` wires them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import assert_never

from broker import topics
from broker.errors import ContractError
from broker.messages import (
    AnyEvent,
    Availability,
    KioskCommand,
    KioskConfig,
    KioskState,
    ProblemReport,
    UpdateOffer,
    Verdict,
    parse_command,
    parse_message,
)
from broker.topics import AvailabilityRoute, CommandRoute, ConfigRoute, VerdictRoute
from broker.transport import TlsFiles
from kiosk import __version__
from kiosk.clock import Clock, SystemClock
from kiosk.config import sound
from kiosk.feedback import PATTERNS, SIGNAL_FOR_REASON, FeedbackPlayer, Pattern, Signal
from kiosk.lifecycle import Lifecycle
from kiosk.mqtt import Inbound, KioskLink
from kiosk.outbox import Outbox
from kiosk.parts import Devices, Outputs, Rebuild
from kiosk.reconfigure import DeviceConfig
from kiosk.scans import ScanSource
from kiosk.settings import KioskSettings
from kiosk.shelf import ShelfView
from kiosk.updater import Updater
from kiosk.walkup import Action, Mode, Walkup

__all__ = ["Deps", "Devices", "Journal", "Kiosk", "Outputs", "Rebuild", "open_kiosk"]

log = logging.getLogger(__name__)

# (kiosk id, what happened, a line for people) — the demo prints these.
Journal = Callable[[str, str, str], None]


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
        self.walkup = Walkup(
            settings.kiosk_id,
            deps.clock,
            settings.session_timeout_s,
            inspect_window_s=settings.inspect_window_s,
        )
        self.player = FeedbackPlayer(
            deps.devices.lights, deps.devices.buzzer, deps.clock, on_show=self._shown
        )
        self.player.sound = settings.sound
        self.lifecycle = Lifecycle(settings.kiosk_id, deps.clock)
        self.scans = ScanSource(
            deps.devices.camera,
            deps.devices.decoder,
            deps.clock,
            frame_timeout_s=settings.frame_timeout_s,
            debounce_s=settings.debounce_s,
            on_camera=self._on_camera,
            on_frame=self.lifecycle.frame_read,
        )
        self.shelf = ShelfView()
        self.config: KioskConfig | None = None  # the newest central sent
        self.reconfigure = DeviceConfig(
            settings,
            deps.devices,
            self.scans,
            self.player,
            deps.rebuild,
            on_press=self._pressed_from_thread,
            note=self.note,
        )
        self._reconfigurations: set[asyncio.Task[None]] = set()
        self._last_status = 0.0
        self._last_resend = 0.0
        self._ready = deps.ready
        # Built on the loop it will run on (the MQTT link needs it too).
        self._loop = asyncio.get_running_loop()
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

    @property
    def availability(self) -> dict[str, Availability]:
        """The items on this kiosk's shelf by id, as central last announced them."""
        return self.shelf.items

    # -- what fleet updates ask of the kiosk (kiosk/updater.py) -----------------------------

    def idle(self) -> bool:
        """No member mid-session and no scan waiting for central: safe to update."""
        return self.walkup.mode is Mode.IDLE and self.outbox.depth == 0

    def healthy(self) -> bool:
        """Broker connected, camera delivering and frames going through the decoder."""
        return (
            self.walkup.online
            and self.walkup.camera_ok
            and self.scans.frames.fps(self.clock.monotonic()) is not None
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
                # On failure, keep running: the scan loop reports it and keeps reopening.
                if await self.scans.start():
                    self.lifecycle.camera_started()
                group.create_task(self._scan_loop(), name="scan-loop")
                group.create_task(self._ticker(), name="ticker")
                group.create_task(self.updater.run(), name="updater")
        finally:
            self.lifecycle.stopping()
            self.devices.button.on_press(None)
            await self.link.close(self._status(KioskState.STOPPED))
            await self.player.close()
            await self.scans.stop()

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
            config_version=self.reconfigure.running_version,
            outbox_depth=self.outbox.depth,
            camera_ok=self.walkup.camera_ok,
            camera_fps=self.scans.frames.fps(self.clock.monotonic()),
            decode_ms=self.scans.frames.decode_ms(),
            config_problem=self.reconfigure.problem,
            frame_errors=self.scans.frame_error_count,
            frame_error=self.scans.last_frame_error,
            update=self.updater.progress,
        )

    async def _scan_loop(self) -> None:
        async for code in self.scans:
            await self.handle_code(code)

    def _on_camera(self, ok: bool, why: str) -> None:
        self.walkup.on_camera(ok)
        self.note("state", why)
        self._refresh_steady()
        self.publish_status()

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

    async def _send(self, event: AnyEvent) -> None:
        payload = await self.outbox.put(event)  # durable before it leaves the kiosk
        if self.walkup.online:
            # Someone is standing here waiting for this answer.
            self.outbox.sent(event.event_id, self.clock.monotonic(), member_waiting=True)
            self.link.publish(topics.scan(self.settings.kiosk_id), payload)

    def _pressed_from_thread(self) -> None:
        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self.press_done()))

    async def press_done(self) -> None:
        """The member pressed "done"."""
        event = self.walkup.on_done()
        if event is None:
            return
        self.note("button", "problem" if isinstance(event, ProblemReport) else "done")
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
            for _late in self.outbox.overdue(now, self.settings.verdict_timeout_s):
                # The member is still standing here: tell them we could not get an answer.
                # The event stays in the outbox and is re-sent until answered.
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

    def _refresh_steady(self) -> None:
        self.player.set_steady(self.walkup.steady())

    # -- from the broker -------------------------------------------------------------------

    def _on_connection(self, up: bool) -> None:
        self.walkup.on_link(up)
        self.lifecycle.link(up)
        self.note("state", "online" if up else "offline")
        self._refresh_steady()
        if up:
            self.link.publish(
                topics.status(self.settings.kiosk_id), self._status(KioskState.ONLINE), retain=True
            )
            self._loop.create_task(self._resend())
            if self._ready is not None:
                self._ready.set()

    async def _resend(self, min_age: float = 0.0) -> None:
        # The original event ids go out again: central answers each once, however often.
        # Events sent within ``min_age`` are left alone: give central the time to answer.
        for _event_id, payload in await self.outbox.due(self.clock.monotonic(), min_age):
            self.link.publish(topics.scan(self.settings.kiosk_id), payload)

    def _on_message(self, route: Inbound, payload: bytes) -> None:
        if not payload:
            # A cleared retained message: an item moved to another shelf (or a retired
            # kiosk's config). Forget the item; there is nothing else to apply.
            if isinstance(route, AvailabilityRoute):
                self.shelf.forget(route.item_id)
            return
        try:
            match route:
                case VerdictRoute():
                    self._loop.create_task(self._on_verdict(parse_message(Verdict, payload)))
                case AvailabilityRoute():
                    self._on_availability(parse_message(Availability, payload))
                case ConfigRoute():
                    self._on_config(parse_message(KioskConfig, payload))
                case CommandRoute():
                    command = parse_command(payload)
                    if isinstance(command, UpdateOffer):
                        self.updater.offer(command)
                    elif isinstance(command, KioskCommand) and command.command == "identify":
                        self.player.play(Signal.IDENTIFY)
                case _:
                    assert_never(route)
        except ContractError as exc:
            log.warning("ignored a bad message on %s: %s", route, exc)

    async def _on_verdict(self, verdict: Verdict) -> None:
        if verdict.kiosk_id != self.settings.kiosk_id:
            return
        answered = await self.outbox.answer(verdict.event_id)
        if answered is None:
            return  # an answer we already had (a redelivery)
        who = f" for {verdict.member_name}" if verdict.member_name else ""
        what = f" {verdict.item_name}" if verdict.item_name else ""
        self.note("verdict", f"{verdict.reason.value}{what}{who}", verdict.event_id)
        self.walkup.on_verdict(verdict)
        if answered.member_waiting(self.clock.wall(), self.settings.verdict_timeout_s * 5):
            signal = SIGNAL_FOR_REASON[verdict.reason]
            self.player.play(signal)
            if self.walkup.inspecting:
                # Once the return's pattern has played, ask about the item's condition.
                played = sum(step.seconds for step in PATTERNS[signal].steps)
                self._loop.create_task(self._ask_condition(played), name="inspect-prompt")
        else:
            self.walkup.forget_return()
        self._refresh_steady()

    async def _ask_condition(self, after_s: float) -> None:
        await self.clock.sleep(after_s)
        if self.walkup.inspecting:
            self.player.play(Signal.INSPECT)

    def _on_availability(self, availability: Availability) -> None:
        if not self.shelf.update(availability):
            return
        self.note(
            "availability",
            f"{availability.name} ({availability.item_id}) is "
            f"{availability.state.value.replace('_', ' ')}",
        )

    def _on_config(self, config: KioskConfig) -> None:
        if config.kiosk_id != self.settings.kiosk_id:
            return
        self.config = config
        self.walkup.on_config(config)
        self.player.sound = sound(self.settings.sound, config.feedback)
        # Moved to another shelf: forget this one's items, hear the new one's.
        self.shelf.move_to(config.shelf_id)
        self.link.follow_shelf(config.shelf_id)
        self._refresh_steady()
        self.note("config", f"shelf {config.shelf_id}, config v{config.config_version}")
        # Kept until done: the loop holds only a weak reference to a task.
        task = self._loop.create_task(self._apply_devices(), name="reconfigure")
        self._reconfigurations.add(task)
        task.add_done_callback(self._reconfigurations.discard)

    async def _apply_devices(self) -> None:
        await self.reconfigure.apply(lambda: self.config)
        self.publish_status()


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
