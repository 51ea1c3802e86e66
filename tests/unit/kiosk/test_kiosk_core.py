"""One kiosk wired together, driven through its handlers with no broker: scans, verdicts,
availability, configuration and commands, and what the member sees and hears."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from broker import topics
from broker.messages import (
    AnyEvent,
    Availability,
    AvailabilityState,
    CodeScan,
    KioskCommand,
    KioskConfig,
    KioskState,
    KioskStatus,
    ProblemReport,
    Reason,
    SessionDone,
    Verdict,
    encode,
    parse_event,
    parse_message,
)
from broker.topics import TopicRefusal
from central.tokens import KeyRing, TokenSigner
from hardware.errors import CameraError, HardwareError
from hardware.interfaces import Camera, Rgb
from hardware.recording import ManualButton, RecordingBuzzer, RecordingLights
from hardware.replay import SceneCamera
from hardware.zxing import ZxingDecoder
from kiosk.clock import ManualClock
from kiosk.core import Deps, Devices, Kiosk, open_kiosk
from kiosk.feedback import PATTERNS, Signal
from kiosk.mqtt import KioskLink, Unread
from kiosk.parts import Outputs
from kiosk.settings import CameraSettings, KioskSettings, PinSettings, SceneCameraSettings
from kiosk.walkup import Mode

KIOSK = "KIOSK-A1"
SHELF = "SHELF-A"
SIGNER = TokenSigner(KeyRing({"K1": b"k" * 32}, "K1"))
AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LABEL = SIGNER.label("DRILL-01", 1)
OTHER_LABEL = SIGNER.label("SAW-01", 1)
PASS = SIGNER.member_pass("PASS-1", "M-1001", datetime(2030, 1, 1, tzinfo=UTC))
ENROLMENT = SIGNER.enrolment("CLAIM-1", SHELF, datetime(2030, 1, 1, tzinfo=UTC))


def colour(signal: Signal) -> Rgb:
    """The first thing ``signal`` shows on the LEDs."""
    return PATTERNS[signal].steps[0].lights


@dataclass
class Published:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class Rig:
    kiosk: Kiosk
    clock: ManualClock
    camera: SceneCamera
    lights: RecordingLights
    buzzer: RecordingBuzzer
    button: ManualButton
    published: list[Published] = field(default_factory=list)
    journal: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def shown(self) -> list[Signal]:
        """Every pattern the kiosk has shown, oldest first."""
        return self.kiosk.player.history

    # Read through calls, so the type checker does not pin a value between steps.
    def last(self) -> Signal:
        """The pattern shown most recently."""
        return self.kiosk.player.history[-1]

    def steady(self) -> Signal:
        return self.kiosk.player.steady

    def mode(self) -> Mode:
        return self.kiosk.walkup.mode

    def state_of(self, item_id: str) -> AvailabilityState:
        return self.kiosk.availability[item_id].state

    def scans_published(self) -> list[AnyEvent]:
        return [
            parse_event(KIOSK, p.payload) for p in self.published if p.topic == topics.scan(KIOSK)
        ]

    async def settle(self, before: set[asyncio.Task[object]]) -> None:
        """Finish the work a handler started (not a pattern still playing on the clock)."""
        me = asyncio.current_task()
        for task in asyncio.all_tasks() - before:
            if task is not me and task is not self.kiosk.player._moment:
                await task
        await asyncio.sleep(0)  # let a pattern the work started show its first step

    async def connect(self, up: bool = True) -> None:
        before = asyncio.all_tasks()
        self.kiosk._on_connection(up)
        await self.settle(before)

    async def deliver(self, topic: str, payload: bytes) -> None:
        """A message arriving from the broker, and everything it sets off."""
        before = asyncio.all_tasks()
        self.kiosk.link.deliver(topic, payload)  # routed by the contract, as from the broker
        await self.settle(before)

    async def scan(self, code: str) -> None:
        await self.kiosk.handle_code(code)
        await asyncio.sleep(0)

    async def verdict(
        self,
        event: AnyEvent,
        reason: Reason,
        *,
        session_open: bool,
        member_name: str | None = None,
    ) -> None:
        await self.deliver(
            topics.verdict(KIOSK),
            encode(
                Verdict(
                    event_id=event.event_id,
                    kiosk_id=KIOSK,
                    reason=reason,
                    accepted=reason.accepted,
                    member_name=member_name,
                    session_open=session_open,
                    decided_at=AT,
                )
            ),
        )

    async def pending_ids(self) -> list[str]:
        return [event_id for event_id, _ in await self.kiosk.outbox.pending()]


async def make_rig(state_dir: Path) -> Rig:
    """A kiosk on ``state_dir`` (its outbox file may already exist), not yet connected."""
    clock = ManualClock()
    camera = SceneCamera(fps=None)
    lights = RecordingLights(clock.monotonic)
    buzzer = RecordingBuzzer(clock.monotonic)
    button = ManualButton()
    journal: list[tuple[str, str, str]] = []
    settings = KioskSettings(
        kiosk_id=KIOSK,
        state_dir=state_dir,
        camera=SceneCameraSettings(),
        session_timeout_s=60,
        verdict_timeout_s=3,
    )
    deps = Deps(
        devices=Devices(camera, ZxingDecoder(), lights, buzzer, button),
        clock=clock,
        journal=lambda *entry: journal.append(entry),
    )
    kiosk = await open_kiosk(settings, deps)
    # run() would connect to MQTT; these tests call the handlers it would wire up.
    kiosk._loop = asyncio.get_running_loop()
    rig = Rig(kiosk, clock, camera, lights, buzzer, button, journal=journal)

    def publish(topic: str, payload: bytes, *, retain: bool = False) -> None:
        rig.published.append(Published(topic, payload, retain))

    kiosk.link.publish = publish  # type: ignore[method-assign]
    kiosk.player.start()
    kiosk.player.set_steady(kiosk.walkup.steady())
    return rig


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    for name in list(os.environ):
        if name.upper().startswith("CS_KIOSK_"):
            monkeypatch.delenv(name)
    rig = await make_rig(tmp_path / "kiosk")
    yield rig
    await rig.kiosk.player.close()
    await rig.kiosk.outbox.close()


@pytest.fixture
async def online(rig: Rig) -> Rig:
    await rig.connect(True)
    rig.published.clear()
    return rig


# -- offline ---------------------------------------------------------------------------


async def test_offline_kiosk_shows_amber(rig: Rig) -> None:
    await rig.connect(False)

    assert rig.steady() is Signal.OFFLINE
    assert rig.lights.state == colour(Signal.OFFLINE)


async def test_offline_return_is_kept_in_the_outbox_and_confirmed_as_queued(rig: Rig) -> None:
    await rig.connect(False)

    await rig.scan(LABEL)

    assert rig.kiosk.outbox.depth == 1
    assert rig.last() is Signal.QUEUED
    assert rig.lights.state == colour(Signal.QUEUED)
    assert rig.buzzer.on
    assert rig.published == []  # nothing can leave; it goes on reconnect
    (_, payload), *_ = await rig.kiosk.outbox.pending()
    event = parse_event(KIOSK, payload)
    assert isinstance(event, CodeScan)
    assert event.code == LABEL
    assert event.queued is True


async def test_offline_pass_is_refused_and_nothing_is_stored(rig: Rig) -> None:
    await rig.connect(False)

    await rig.scan(PASS)

    assert rig.kiosk.outbox.depth == 0
    assert rig.last() is Signal.REFUSED_OFFLINE


async def test_a_foreign_code_is_refused_without_storing_or_sending(online: Rig) -> None:
    await online.scan("HTTPS://EXAMPLE.ORG/POSTER")
    await online.scan(ENROLMENT)

    assert online.kiosk.outbox.depth == 0
    assert online.published == []
    assert online.shown[-2:] == [Signal.REFUSED_CODE, Signal.REFUSED_CODE]


async def test_queued_returns_are_sent_on_reconnect_with_their_original_event_ids(
    rig: Rig,
) -> None:
    await rig.connect(False)
    await rig.scan(LABEL)
    await rig.scan(OTHER_LABEL)
    queued = await rig.pending_ids()

    await rig.connect(True)

    assert [event.event_id for event in rig.scans_published()] == queued
    assert rig.steady() is Signal.IDLE
    status = [p for p in rig.published if p.topic == topics.status(KIOSK)]
    assert len(status) == 1
    assert status[0].retain
    presence = parse_message(KioskStatus, status[0].payload)
    assert presence.state is KioskState.ONLINE
    assert presence.outbox_depth == 2


async def test_a_queued_return_answered_later_is_cleared_silently(rig: Rig) -> None:
    # The member who left the item walked away long ago: no pattern for them now.
    await rig.connect(False)
    await rig.scan(LABEL)
    (event,) = await rig.kiosk.outbox.pending()
    await rig.connect(True)
    await rig.clock.advance(1.0, step=0.05)
    shown_before = list(rig.shown)

    returned = parse_event(KIOSK, event[1])
    await rig.verdict(returned, Reason.RETURNED, session_open=False)

    assert rig.kiosk.outbox.depth == 0
    assert rig.shown == shown_before


# -- online ----------------------------------------------------------------------------


async def test_online_scan_is_stored_then_published_on_this_kiosks_topic(online: Rig) -> None:
    await online.scan(PASS)

    assert online.kiosk.outbox.depth == 1  # kept until central answers
    ((_, stored),) = await online.kiosk.outbox.pending()
    assert [(p.topic, p.payload) for p in online.published] == [(topics.scan(KIOSK), stored)]
    event = parse_event(KIOSK, stored)
    assert isinstance(event, CodeScan)
    assert (event.code, event.queued) == (PASS, False)


async def test_publishing_on_a_link_that_never_connected_does_not_raise(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # paho queues the message until it connects; the scan must still reach the outbox.
    monkeypatch.setattr(
        rig.kiosk.link, "publish", functools.partial(KioskLink.publish, rig.kiosk.link)
    )
    rig.kiosk.walkup.on_link(True)

    await rig.scan(LABEL)

    assert rig.kiosk.outbox.depth == 1


async def test_a_verdict_for_a_scan_clears_it_and_plays_its_pattern(online: Rig) -> None:
    await online.scan(PASS)
    (event,) = online.scans_published()

    await online.verdict(event, Reason.SESSION_OPENED, session_open=True, member_name="Ada")

    assert online.kiosk.outbox.depth == 0
    assert online.last() is Signal.SESSION_OPENED
    assert online.lights.state == colour(Signal.SESSION_OPENED)
    assert online.mode() is Mode.SESSION
    assert online.kiosk.walkup.member_name == "Ada"
    assert online.steady() is Signal.SESSION
    assert any("Ada" in text for _, kind, text in online.journal if kind == "verdict")

    await online.clock.advance(1.0, step=0.05)
    assert online.lights.state == colour(Signal.SESSION)
    assert not online.buzzer.on


@pytest.mark.parametrize(
    ("reason", "signal"),
    [
        (Reason.ALREADY_USED, Signal.REFUSED_USED),
        (Reason.EXPIRED, Signal.REFUSED_CODE),
        (Reason.MEMBER_SUSPENDED, Signal.REFUSED_MEMBER),
        (Reason.FEATURE_DISABLED, Signal.REFUSED_DISABLED),
        (Reason.RATE_LIMITED, Signal.REFUSED_ABUSE),
    ],
)
async def test_a_refused_pass_plays_its_refusal_and_leaves_the_kiosk_idle(
    online: Rig, reason: Reason, signal: Signal
) -> None:
    await online.scan(PASS)
    (event,) = online.scans_published()

    await online.verdict(event, reason, session_open=False)

    assert online.last() is signal
    assert online.kiosk.outbox.depth == 0
    assert online.mode() is Mode.IDLE


async def test_a_checkout_session_from_pass_to_done(online: Rig) -> None:
    await online.scan(PASS)
    (opened,) = online.scans_published()
    await online.verdict(opened, Reason.SESSION_OPENED, session_open=True, member_name="Ada")

    await online.scan(LABEL)
    checkout = online.scans_published()[-1]
    await online.verdict(checkout, Reason.CHECKED_OUT, session_open=True)
    assert online.last() is Signal.CHECKED_OUT

    await online.kiosk.press_done()
    done = online.scans_published()[-1]
    assert isinstance(done, SessionDone)
    assert online.mode() is Mode.IDLE
    assert online.steady() is Signal.IDLE
    assert await online.pending_ids() == [done.event_id]  # kept until central confirms

    await online.verdict(done, Reason.SESSION_CLOSED, session_open=False)
    assert online.kiosk.outbox.depth == 0
    assert online.last() is Signal.SESSION_CLOSED


async def test_done_without_a_session_sends_nothing(online: Rig) -> None:
    await online.kiosk.press_done()

    assert online.published == []
    assert online.kiosk.outbox.depth == 0


async def test_a_verdict_for_an_unknown_event_changes_nothing(online: Rig) -> None:
    await online.scan(LABEL)
    waiting = await online.pending_ids()
    shown_before = list(online.shown)
    stranger = CodeScan(event_id="0" * 32, kiosk_id=KIOSK, code=PASS, scanned_at=AT)

    await online.verdict(stranger, Reason.SESSION_OPENED, session_open=True, member_name="Eve")

    assert await online.pending_ids() == waiting
    assert online.shown == shown_before
    assert online.mode() is Mode.IDLE
    assert online.steady() is Signal.IDLE


async def test_a_redelivered_verdict_is_played_once(online: Rig) -> None:
    await online.scan(LABEL)
    (event,) = online.scans_published()
    await online.verdict(event, Reason.RETURNED, session_open=False)
    await online.clock.advance(1.0, step=0.05)
    shown_before = list(online.shown)

    await online.verdict(event, Reason.RETURNED, session_open=False)

    assert online.shown == shown_before


async def test_a_verdict_addressed_to_another_kiosk_is_ignored(online: Rig) -> None:
    await online.scan(PASS)
    (event,) = online.scans_published()
    payload = encode(
        Verdict(
            event_id=event.event_id,
            kiosk_id="KIOSK-B1",
            reason=Reason.SESSION_OPENED,
            accepted=True,
            session_open=True,
            decided_at=AT,
        )
    )

    await online.deliver(topics.verdict(KIOSK), payload)

    assert online.kiosk.outbox.depth == 1
    assert online.mode() is Mode.IDLE


async def test_no_answer_from_central_is_told_to_the_waiting_member(online: Rig) -> None:
    await online.scan(PASS)
    ticker = asyncio.create_task(online.kiosk._ticker())
    try:
        await online.clock.advance(2.9, step=0.05)
        assert Signal.REFUSED_OFFLINE not in online.shown

        await online.clock.advance(0.3, step=0.05)
        assert online.shown.count(Signal.REFUSED_OFFLINE) == 1
        assert online.kiosk.outbox.depth == 1  # still sent again on reconnect

        await online.clock.advance(5.0, step=0.05)
        assert online.shown.count(Signal.REFUSED_OFFLINE) == 1  # said once
    finally:
        ticker.cancel()


async def test_an_idle_session_times_out_on_the_ticker(online: Rig) -> None:
    await online.scan(PASS)
    (event,) = online.scans_published()
    await online.verdict(event, Reason.SESSION_OPENED, session_open=True, member_name="Ada")
    ticker = asyncio.create_task(online.kiosk._ticker())
    try:
        await online.clock.advance(59.0, step=0.5)
        assert online.steady() is Signal.SESSION

        await online.clock.advance(1.5, step=0.1)
        assert online.mode() is Mode.IDLE
        assert online.steady() is Signal.IDLE
        assert online.lights.state == colour(Signal.IDLE)
    finally:
        ticker.cancel()


# -- availability ----------------------------------------------------------------------


def availability(seq: int, state: AvailabilityState, item_id: str = "DRILL-01") -> bytes:
    return encode(
        Availability(
            item_id=item_id,
            shelf_id=SHELF,
            name="Cordless drill",
            state=state,
            seq=seq,
            changed_at=AT,
        )
    )


async def test_an_item_moved_off_the_shelf_is_forgotten(online: Rig) -> None:
    topic = topics.availability(SHELF, "DRILL-01")
    await online.deliver(topic, availability(5, AvailabilityState.AVAILABLE))
    assert "DRILL-01" in online.kiosk.availability
    await online.deliver(topic, b"")  # central cleared the retained copy: the item moved
    assert "DRILL-01" not in online.kiosk.availability


async def test_availability_is_kept_per_item_and_stale_copies_lose(online: Rig) -> None:
    topic = topics.availability(SHELF, "DRILL-01")

    await online.deliver(topic, availability(5, AvailabilityState.CHECKED_OUT))
    await online.deliver(topic, availability(3, AvailabilityState.AVAILABLE))  # older
    assert online.state_of("DRILL-01") is AvailabilityState.CHECKED_OUT
    assert online.kiosk.availability["DRILL-01"].seq == 5

    await online.deliver(topic, availability(5, AvailabilityState.MAINTENANCE))  # a repeat
    assert online.state_of("DRILL-01") is AvailabilityState.CHECKED_OUT

    await online.deliver(topic, availability(6, AvailabilityState.AVAILABLE))
    assert online.state_of("DRILL-01") is AvailabilityState.AVAILABLE

    await online.deliver(
        topics.availability(SHELF, "SAW-01"),
        availability(1, AvailabilityState.RETIRED, item_id="SAW-01"),
    )
    assert set(online.kiosk.availability) == {"DRILL-01", "SAW-01"}


# -- configuration and commands ----------------------------------------------------------


def config(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "kiosk_id": KIOSK,
        "shelf_id": SHELF,
        "config_version": 2,
        "session_timeout_s": 5.0,
        "checkout_enabled": True,
    }
    fields.update(changes)
    return encode(KioskConfig.model_validate(fields))


async def test_config_switching_checkout_off_shows_returns_only(online: Rig) -> None:
    await online.deliver(topics.config(KIOSK), config(checkout_enabled=False))

    assert online.steady() is Signal.CHECKOUT_OFF
    assert online.lights.state == colour(Signal.CHECKOUT_OFF)
    assert online.kiosk.config is not None
    assert online.kiosk.config.config_version == 2

    await online.deliver(topics.config(KIOSK), config(checkout_enabled=True, config_version=3))
    assert online.steady() is Signal.IDLE


async def test_config_sets_the_session_timeout(online: Rig) -> None:
    await online.deliver(topics.config(KIOSK), config(session_timeout_s=5.0))
    await online.scan(PASS)
    (event,) = online.scans_published()
    await online.verdict(event, Reason.SESSION_OPENED, session_open=True)

    await online.clock.advance(4.5, step=0.5)
    assert online.kiosk.walkup.tick() is False
    await online.clock.advance(0.5, step=0.5)
    assert online.kiosk.walkup.tick() is True


async def test_config_for_another_kiosk_is_ignored(online: Rig) -> None:
    await online.deliver(topics.config(KIOSK), config(kiosk_id="KIOSK-B1", checkout_enabled=False))

    assert online.kiosk.config is None
    assert online.kiosk.walkup.checkout_enabled is True
    assert online.steady() is Signal.IDLE


async def test_identify_command_flashes_the_kiosk(online: Rig) -> None:
    command = encode(KioskCommand(command="identify", issued_at=AT))

    await online.deliver(topics.command(KIOSK), command)

    assert online.last() is Signal.IDENTIFY
    assert online.lights.state == colour(Signal.IDENTIFY)


class FakeRebuild:
    """Makes recording devices; pins in ``busy`` cannot be had, as if another device held them."""

    def __init__(self, clock: ManualClock, busy: frozenset[int] = frozenset()) -> None:
        self._clock = clock
        self._busy = busy
        self.outputs_made: list[Outputs] = []

    def camera(self, settings: CameraSettings) -> Camera:
        return SceneCamera(fps=None)

    def outputs(self, pins: PinSettings) -> Outputs:
        taken = self._busy & {pins.red, pins.green, pins.blue, pins.buzzer, pins.button}
        if taken:
            raise HardwareError(f"GPIO{min(taken)} is in use")
        made = Outputs(
            RecordingLights(self._clock.monotonic),
            RecordingBuzzer(self._clock.monotonic),
            ManualButton(),
        )
        self.outputs_made.append(made)
        return made


def last_status(rig: Rig) -> KioskStatus:
    (last, *_) = [p for p in reversed(rig.published) if p.topic == topics.status(KIOSK)]
    assert last.retain
    return parse_message(KioskStatus, last.payload)


async def test_a_kiosk_moved_to_another_shelf_forgets_the_old_one_and_ignores_late_copies(
    online: Rig,
) -> None:
    await online.deliver(topics.config(KIOSK), config(config_version=2))
    await online.deliver(
        topics.availability(SHELF, "DRILL-01"), availability(1, AvailabilityState.AVAILABLE)
    )

    await online.deliver(topics.config(KIOSK), config(config_version=3, shelf_id="SHELF-B"))
    # A copy from the old shelf still in flight when the subscription moved.
    await online.deliver(
        topics.availability(SHELF, "SAW-01"),
        availability(1, AvailabilityState.AVAILABLE, item_id="SAW-01"),
    )

    assert online.kiosk.availability == {}
    assert last_status(online).config_version == 3


async def test_new_pins_without_a_way_to_rebuild_are_reported_not_applied(online: Rig) -> None:
    await online.deliver(topics.config(KIOSK), config(config_version=2, pins={"buzzer": 12}))

    status = last_status(online)
    assert status.config_version == 2
    assert status.config_problem is not None
    assert "restart" in status.config_problem


async def test_new_pins_are_wired_in_and_the_old_ones_released(online: Rig) -> None:
    rebuild = FakeRebuild(online.clock)
    online.kiosk.reconfigure.rebuild = rebuild

    await online.deliver(topics.config(KIOSK), config(config_version=2, pins={"buzzer": 12}))

    (made,) = rebuild.outputs_made
    assert online.lights.closed
    assert online.buzzer.closed
    assert online.kiosk.devices.buzzer is made.buzzer
    await online.deliver(
        topics.command(KIOSK), encode(KioskCommand(command="identify", issued_at=AT))
    )
    assert isinstance(made.lights, RecordingLights)
    assert made.lights.state == colour(Signal.IDENTIFY)
    assert isinstance(made.buzzer, RecordingBuzzer)
    assert made.buzzer.on
    assert last_status(online).config_problem is None
    assert online.kiosk.reconfigure.pins.buzzer == 12


async def test_pins_that_cannot_be_had_fall_back_to_the_old_ones_and_say_so(online: Rig) -> None:
    rebuild = FakeRebuild(online.clock, busy=frozenset({12}))
    online.kiosk.reconfigure.rebuild = rebuild

    await online.deliver(topics.config(KIOSK), config(config_version=2, pins={"buzzer": 12}))

    (made,) = rebuild.outputs_made  # the old pins, taken back
    assert online.kiosk.reconfigure.pins.buzzer == 23
    assert isinstance(made.lights, RecordingLights)
    assert made.lights.state == colour(Signal.IDLE)  # members still see the kiosk
    status = last_status(online)
    assert status.config_version == 2
    assert status.config_problem == "pins: GPIO12 is in use"


async def test_new_camera_settings_reopen_the_camera(online: Rig) -> None:
    online.kiosk.reconfigure.rebuild = FakeRebuild(online.clock)
    old = online.camera
    old.start()

    await online.deliver(topics.config(KIOSK), config(config_version=2, camera={"fps": 10}))

    assert online.kiosk.scans.camera is not old
    assert online.kiosk.reconfigure.camera_settings == SceneCameraSettings(fps=10)
    with pytest.raises(CameraError):
        old.read(0.1)  # stopped: the old one is released
    assert last_status(online).config_problem is None


async def test_a_device_that_breaks_while_reconfiguring_is_reported_not_fatal(
    online: Rig,
) -> None:
    class Broken(FakeRebuild):
        def camera(self, settings: CameraSettings) -> Camera:
            raise RuntimeError("libcamera says no " * 30)

    online.kiosk.reconfigure.rebuild = Broken(online.clock)

    await online.deliver(topics.config(KIOSK), config(config_version=2, camera={"fps": 10}))

    status = last_status(online)  # still reporting, with a reason that fits the message
    assert status.config_version == 2
    assert status.config_problem is not None
    assert status.config_problem.startswith("RuntimeError: libcamera says no")
    assert len(status.config_problem) == 200
    await online.scan(PASS)  # and still at work
    assert online.kiosk.outbox.depth == 1


@pytest.mark.parametrize(
    ("sound", "signal", "beeps"),
    [
        ("refusals", Signal.CHECKED_OUT, False),
        ("refusals", Signal.REFUSED_USED, True),
        ("off", Signal.REFUSED_USED, False),
        ("off", Signal.IDENTIFY, False),
        ("all", Signal.CHECKED_OUT, True),
    ],
)
async def test_sound_setting_decides_which_patterns_beep(
    online: Rig, sound: str, signal: Signal, beeps: bool
) -> None:
    await online.deliver(topics.config(KIOSK), config(feedback={"sound": sound}))
    mark = len(online.buzzer.states)

    online.kiosk.player.play(signal)
    await online.clock.advance(6.0, step=0.05)

    assert any(online.buzzer.states[mark:]) is beeps
    assert online.lights.states[-1] == colour(Signal.IDLE)  # the lights played it all the same


# -- bad input ---------------------------------------------------------------------------

GOOD_VERDICT = encode(
    Verdict(
        event_id="0" * 32,
        kiosk_id=KIOSK,
        reason=Reason.CHECKED_OUT,
        accepted=True,
        session_open=True,
        decided_at=AT,
    )
)
MALFORMED = {
    "empty": b"",
    "not-json": b"hello",
    "not-utf8": b"\xff\xfe\x00{",
    "json-list": b"[1, 2]",
    "json-string": b'"identify"',
    "empty-object": b"{}",
    "no-version": GOOD_VERDICT.replace(b'"v":1,', b""),
    "future-version": GOOD_VERDICT.replace(b'"v":1', b'"v":2'),
    "unknown-reason": GOOD_VERDICT.replace(b"CHECKED_OUT", b"CHECKED_OUTT"),
    "extra-field": GOOD_VERDICT[:-1] + b',"admin":true}',
    "oversized": b'{"v":1,"pad":"' + b"x" * 5000 + b'"}',
    "another-message": encode(KioskCommand(command="identify", issued_at=AT)),
}
TOPICS = {
    "verdict": topics.verdict(KIOSK),
    "config": topics.config(KIOSK),
    "command": topics.command(KIOSK),
    "availability": topics.availability(SHELF, "DRILL-01"),
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("topic", TOPICS.values(), ids=TOPICS.keys())
async def test_a_malformed_message_is_ignored(online: Rig, topic: str, payload: bytes) -> None:
    if topic.endswith("/command") and payload == MALFORMED["another-message"]:
        payload = GOOD_VERDICT  # the command itself is the one good payload there
    await online.scan(LABEL)
    shown_before = list(online.shown)

    await online.deliver(topic, payload)

    assert online.shown == shown_before
    assert online.kiosk.outbox.depth == 1
    assert online.kiosk.availability == {}
    assert online.kiosk.config is None
    assert online.mode() is Mode.IDLE


@pytest.mark.parametrize("topic", TOPICS.values(), ids=TOPICS.keys())
async def test_a_deeply_nested_message_is_ignored(online: Rig, topic: str) -> None:
    # 4,000 bytes, under the size limit, but deeper than the JSON parser's stack.
    payload = b"[" * 2000 + b"]" * 2000
    await online.scan(LABEL)
    shown_before = list(online.shown)

    await online.deliver(topic, payload)

    assert online.shown == shown_before
    assert online.kiosk.outbox.depth == 1
    assert online.kiosk.availability == {}
    assert online.kiosk.config is None


async def test_a_message_on_a_topic_not_for_this_kiosk_is_counted_and_ignored(
    online: Rig,
) -> None:
    await online.scan(LABEL)
    (event,) = online.scans_published()
    verdict = encode(
        Verdict(
            event_id=event.event_id,
            kiosk_id=KIOSK,
            reason=Reason.RETURNED,
            accepted=True,
            session_open=False,
            decided_at=AT,
        )
    )
    shown_before = list(online.shown)

    for topic in (
        f"$share/x/{topics.verdict(KIOSK)}",
        f"{topics.verdict(KIOSK)}/extra",
        "cs/v1/kiosk/+/verdict",
        topics.verdict("KIOSK-B2"),  # in the contract, but another kiosk's
        topics.config("KIOSK-B2"),
        topics.status(KIOSK),  # in the contract, but never read by a kiosk
        topics.scan(KIOSK),
    ):
        await online.deliver(topic, verdict)

    assert online.shown == shown_before
    assert online.kiosk.outbox.depth == 1  # not taken as an answer
    assert online.kiosk.config is None
    assert online.kiosk.link.refused_topics == {
        TopicRefusal.WRONG_ROOT: 1,
        TopicRefusal.UNKNOWN_KIND: 1,
        TopicRefusal.BAD_ID: 1,
        Unread.OTHER_KIOSK: 2,
        Unread.NOT_READ: 2,
    }


# -- frames the decoder cannot read -----------------------------------------------------


async def test_a_frame_the_decoder_fails_on_is_shown_in_the_status_and_scanning_goes_on(
    online: Rig,
) -> None:
    online.camera.start()
    # zxing-cpp refuses images wider than 65,535 pixels: a real decoder error on one frame.
    online.camera.show_frame(np.zeros((1, 70_000), np.uint8), frames=1)
    scanning = asyncio.create_task(online.kiosk._scan_loop())
    try:
        async with asyncio.timeout(10):
            while online.kiosk.scans.frame_error_count < 1:  # noqa: ASYNC110 - frames come from a thread
                await asyncio.sleep(0.01)
            online.camera.show(LABEL, frames=3)
            while not online.scans_published():  # noqa: ASYNC110 - frames come from a thread
                await asyncio.sleep(0.01)
    finally:
        scanning.cancel()

    (event,) = online.scans_published()
    assert isinstance(event, CodeScan)
    assert event.code == LABEL  # the kiosk kept scanning after the bad frame
    online.kiosk.publish_status()
    status = last_status(online)
    assert status.frame_errors == 1
    assert status.frame_error == "decoder_error"
    assert status.camera_ok is True


async def test_a_healthy_kiosks_status_carries_no_frame_error_fields(online: Rig) -> None:
    # Centrals from before these fields refuse unknown ones: leave them out until needed.
    online.kiosk.publish_status()
    (last,) = [p for p in online.published if p.topic == topics.status(KIOSK)]
    assert b"frame_error" not in last.payload
    assert last_status(online).frame_errors is None


# -- an outbox written by the previous version ------------------------------------------

OLD_OUTBOX = (
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_id TEXT NOT NULL UNIQUE, payload BLOB NOT NULL)"
)


def write_old_outbox(path: Path, events: list[CodeScan | SessionDone]) -> None:
    """An outbox file exactly as the kiosk before the scanned_at/queued columns wrote it."""
    path.parent.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(OLD_OUTBOX)
        db.executemany(
            "INSERT INTO outbox (event_id, payload) VALUES (?, ?)",
            [(e.event_id, encode(e)) for e in events],
        )
        db.commit()


async def test_a_kiosk_upgraded_with_scans_in_its_outbox_sends_them_all_and_shows_a_fresh_answer(
    tmp_path: Path,
) -> None:
    state = tmp_path / "kiosk"
    clock_now = ManualClock().wall()
    queued = CodeScan(
        event_id="a" * 32,
        kiosk_id=KIOSK,
        code=LABEL,
        scanned_at=clock_now - timedelta(hours=2),
        queued=True,
    )
    just_scanned = CodeScan(
        event_id="b" * 32, kiosk_id=KIOSK, code=OTHER_LABEL, scanned_at=clock_now
    )
    done = SessionDone(event_id="c" * 32, kiosk_id=KIOSK, scanned_at=clock_now)
    write_old_outbox(state / "outbox.db", [queued, just_scanned, done])

    upgraded = await make_rig(state)
    try:
        assert upgraded.kiosk.outbox.depth == 3
        await upgraded.connect(True)
        # Every event goes out again, with its original id, in order.
        assert [e.event_id for e in upgraded.scans_published()] == ["a" * 32, "b" * 32, "c" * 32]

        await upgraded.verdict(queued, Reason.RETURNED, session_open=False)
        assert Signal.RETURNED not in upgraded.shown  # told "queued" hours ago
        await upgraded.verdict(just_scanned, Reason.RETURNED, session_open=False)
        assert upgraded.last() is Signal.RETURNED  # the member may still be standing here
        await upgraded.verdict(done, Reason.SESSION_CLOSED, session_open=False)
        assert upgraded.kiosk.outbox.depth == 0
    finally:
        await upgraded.kiosk.player.close()
        await upgraded.kiosk.outbox.close()


# -- inspection at return --------------------------------------------------------------


async def test_after_a_return_the_kiosk_asks_and_a_press_reports_a_problem(online: Rig) -> None:
    await online.scan(LABEL)
    (returned,) = online.scans_published()
    await online.verdict(returned, Reason.RETURNED, session_open=False)
    assert online.last() is Signal.RETURNED
    await online.clock.advance(1.0, step=0.05)
    assert online.last() is Signal.INSPECT, "the prompt follows the return's pattern"

    await online.kiosk.press_done()  # what the button's callback runs
    report = online.scans_published()[-1]
    assert isinstance(report, ProblemReport)
    assert report.return_event_id == returned.event_id
    assert report.event_id in await online.pending_ids()  # durable until central answers
    await online.verdict(report, Reason.PROBLEM_REPORTED, session_open=False)
    assert online.last() is Signal.PROBLEM_NOTED


async def test_no_press_within_the_window_means_fine(online: Rig) -> None:
    await online.scan(LABEL)
    (returned,) = online.scans_published()
    await online.verdict(returned, Reason.RETURNED_TO_HOLD, session_open=False)
    assert online.last() is Signal.HOLD_SHELF
    await online.clock.advance(6.0, step=0.1)
    await online.kiosk.press_done()
    assert online.scans_published() == [returned], "too late: a press is nothing now"


async def test_a_queued_return_answered_later_never_asks_about_the_item(rig: Rig) -> None:
    await rig.kiosk.handle_code(LABEL)  # offline: queued
    (event,) = await rig.kiosk.outbox.pending()
    await rig.connect(True)
    await rig.clock.advance(1.0, step=0.05)
    returned = parse_event(KIOSK, event[1])
    await rig.verdict(returned, Reason.RETURNED, session_open=False)
    assert not rig.kiosk.walkup.inspecting
    await rig.kiosk.press_done()
    assert all(not isinstance(e, ProblemReport) for e in rig.scans_published())
