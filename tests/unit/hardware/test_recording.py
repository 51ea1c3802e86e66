"""The recording fakes: what the kiosk set, when, and a button pressed from code."""

from __future__ import annotations

import threading

import pytest

from hardware.errors import HardwareError
from hardware.interfaces import OFF, Button, Buzzer, Lights, Rgb
from hardware.recording import ManualButton, RecordingBuzzer, RecordingLights


class StepClock:
    """Returns 0, 1, 2... so each recorded event has a distinct, known time."""

    def __init__(self) -> None:
        self.ticks = 0.0

    def __call__(self) -> float:
        now = self.ticks
        self.ticks += 1
        return now


def test_lights_record_each_state_with_its_time() -> None:
    lights = RecordingLights(clock=StepClock())
    as_protocol: Lights = lights
    assert lights.state == OFF
    assert lights.events == []

    as_protocol.set(Rgb(green=True))
    as_protocol.set(Rgb(red=True, blue=True))

    assert lights.state == Rgb(red=True, blue=True)
    assert lights.events == [(0.0, Rgb(green=True)), (1.0, Rgb(red=True, blue=True))]
    assert lights.states == [Rgb(green=True), Rgb(red=True, blue=True)]


def test_lights_events_are_a_snapshot() -> None:
    lights = RecordingLights(clock=StepClock())
    lights.set(Rgb(red=True))

    snapshot = lights.events
    lights.set(OFF)

    assert len(snapshot) == 1
    assert len(lights.events) == 2


def test_lights_close_records_off_and_refuses_further_use() -> None:
    lights = RecordingLights(clock=StepClock())
    lights.set(Rgb(red=True))

    lights.close()
    lights.close()

    assert lights.closed
    assert lights.state == OFF
    assert lights.events == [(0.0, Rgb(red=True)), (1.0, OFF)]
    with pytest.raises(HardwareError, match="closed"):
        lights.set(Rgb(green=True))


def test_lights_record_every_set_from_many_threads() -> None:
    lights = RecordingLights()

    def flicker() -> None:
        for _ in range(500):
            lights.set(Rgb(red=True))
            lights.set(OFF)

    threads = [threading.Thread(target=flicker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(lights.events) == 4000
    times = [when for when, _ in lights.events]
    assert times == sorted(times)


def test_buzzer_records_each_state_with_its_time() -> None:
    buzzer = RecordingBuzzer(clock=StepClock())
    as_protocol: Buzzer = buzzer
    assert not buzzer.on

    as_protocol.set(True)
    assert buzzer.on
    as_protocol.set(False)

    assert buzzer.events == [(0.0, True), (1.0, False)]
    assert buzzer.states == [True, False]


def test_buzzer_close_records_silence_and_refuses_further_use() -> None:
    buzzer = RecordingBuzzer(clock=StepClock())
    buzzer.set(True)

    buzzer.close()
    buzzer.close()

    assert buzzer.closed
    assert not buzzer.on
    assert buzzer.events == [(0.0, True), (1.0, False)]
    with pytest.raises(HardwareError, match="closed"):
        buzzer.set(True)


def test_manual_button_press_runs_the_callback() -> None:
    button = ManualButton()
    as_protocol: Button = button
    presses: list[int] = []

    assert not button.press()  # nothing registered yet
    as_protocol.on_press(lambda: presses.append(1))
    assert button.press()
    assert button.press()

    assert presses == [1, 1]
    assert button.presses == 2


def test_manual_button_callback_can_be_removed() -> None:
    button = ManualButton()
    presses: list[int] = []
    button.on_press(lambda: presses.append(1))

    button.on_press(None)

    assert not button.press()
    assert presses == []


def test_closed_manual_button_ignores_presses() -> None:
    button = ManualButton()
    presses: list[int] = []
    button.on_press(lambda: presses.append(1))

    button.close()

    assert not button.press()
    assert presses == []
    assert button.presses == 0


def test_manual_button_lets_callback_errors_reach_the_test() -> None:
    button = ManualButton()

    def callback() -> None:
        raise RuntimeError("kiosk bug")

    button.on_press(callback)

    with pytest.raises(RuntimeError, match="kiosk bug"):
        button.press()
