"""The gpiozero backends on gpiozero's MockFactory: pins driven, presses bridged, pins freed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from hardware.errors import HardwareError
from hardware.gpio import GpioButton, GpioBuzzer, GpioLights
from hardware.interfaces import OFF, Button, Buzzer, Lights, Rgb

RED, GREEN, BLUE, BUZZER, BUTTON = 17, 27, 22, 18, 23


@pytest.fixture
def factory() -> Iterator[Any]:
    factory = MockFactory()
    yield factory
    factory.reset()


def levels(factory: Any) -> tuple[bool, bool, bool]:
    return (
        bool(factory.pin(RED).state),
        bool(factory.pin(GREEN).state),
        bool(factory.pin(BLUE).state),
    )


def history(factory: Any, pin: int) -> list[bool]:
    return [bool(change.state) for change in factory.pin(pin).states]


def test_lights_set_drives_the_three_pins(factory: Any) -> None:
    lights: Lights = GpioLights(RED, GREEN, BLUE, pin_factory=factory)
    assert levels(factory) == (False, False, False)

    lights.set(Rgb(green=True))
    assert levels(factory) == (False, True, False)
    lights.set(Rgb(red=True, blue=True))
    assert levels(factory) == (True, False, True)
    lights.set(OFF)
    assert levels(factory) == (False, False, False)

    assert history(factory, RED) == [False, True, False]
    assert history(factory, GREEN) == [False, True, False]
    assert history(factory, BLUE) == [False, True, False]


def test_lights_set_starts_no_background_threads(factory: Any) -> None:
    lights = GpioLights(RED, GREEN, BLUE, pin_factory=factory)
    before = threading.active_count()

    lights.set(Rgb(True, True, True))
    lights.set(OFF)

    # blink() would have started a gpiozero thread that toggles on the wall clock.
    assert threading.active_count() == before


def test_active_low_lights_invert_the_pin_levels(factory: Any) -> None:
    lights = GpioLights(RED, GREEN, BLUE, active_high=False, pin_factory=factory)
    assert levels(factory) == (True, True, True)  # off, for LEDs wired to 3V3

    lights.set(Rgb(red=True))

    assert levels(factory) == (False, True, True)


def test_lights_close_switches_off_and_frees_the_pins(factory: Any) -> None:
    lights = GpioLights(RED, GREEN, BLUE, pin_factory=factory)
    lights.set(Rgb(True, True, True))

    lights.close()
    lights.close()  # safe twice

    assert history(factory, RED)[-1] is False
    assert factory.pin(RED).function == "input"
    with pytest.raises(HardwareError, match="closed"):
        lights.set(Rgb(red=True))
    # The pins are free again.
    GpioLights(RED, GREEN, BLUE, pin_factory=factory).close()


def test_lights_on_a_busy_pin_fail_and_release_what_they_claimed(factory: Any) -> None:
    busy = LED(BLUE, pin_factory=factory)

    with pytest.raises(HardwareError, match="cannot open LED pins"):
        GpioLights(RED, GREEN, BLUE, pin_factory=factory)

    busy.close()
    # Red and green were released when blue failed, so all three open now.
    GpioLights(RED, GREEN, BLUE, pin_factory=factory).close()


def test_buzzer_follows_set_and_closes_silent(factory: Any) -> None:
    buzzer: Buzzer = GpioBuzzer(BUZZER, pin_factory=factory)
    before = threading.active_count()

    buzzer.set(True)
    assert factory.pin(BUZZER).state
    buzzer.set(False)
    buzzer.set(True)
    assert threading.active_count() == before
    buzzer.close()
    buzzer.close()

    assert history(factory, BUZZER) == [False, True, False, True, False]
    assert factory.pin(BUZZER).function == "input"
    with pytest.raises(HardwareError, match="closed"):
        buzzer.set(True)
    GpioBuzzer(BUZZER, pin_factory=factory).close()


def test_buzzer_on_a_busy_pin_is_a_hardware_error(factory: Any) -> None:
    busy = LED(BUZZER, pin_factory=factory)

    with pytest.raises(HardwareError, match="buzzer pin"):
        GpioBuzzer(BUZZER, pin_factory=factory)
    busy.close()


def test_button_press_calls_the_callback(factory: Any) -> None:
    button: Button = GpioButton(BUTTON, pin_factory=factory)
    presses: list[str] = []
    button.on_press(lambda: presses.append("pressed"))
    pin = factory.pin(BUTTON)
    assert pin.pull == "up"

    pin.drive_low()  # pressed: shorted to ground
    pin.drive_high()  # released: no call
    pin.drive_low()

    assert presses == ["pressed", "pressed"]


def test_button_callback_can_be_replaced_and_removed(factory: Any) -> None:
    button = GpioButton(BUTTON, pin_factory=factory)
    pin = factory.pin(BUTTON)
    first: list[int] = []
    second: list[int] = []

    button.on_press(lambda: first.append(1))
    pin.drive_low()
    pin.drive_high()
    button.on_press(lambda: second.append(1))
    pin.drive_low()
    pin.drive_high()
    button.on_press(None)
    pin.drive_low()

    assert (first, second) == ([1], [1])


def test_failing_callback_is_logged_and_the_button_keeps_working(
    factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    button = GpioButton(BUTTON, pin_factory=factory)
    pin = factory.pin(BUTTON)
    calls: list[int] = []

    def callback() -> None:
        calls.append(1)
        raise RuntimeError("kiosk bug")

    button.on_press(callback)
    with caplog.at_level(logging.ERROR, logger="hardware.gpio"):
        pin.drive_low()
        pin.drive_high()
        pin.drive_low()

    assert calls == [1, 1]
    assert "button callback failed" in caplog.text


def test_button_close_stops_presses_and_frees_the_pin(factory: Any) -> None:
    button = GpioButton(BUTTON, pin_factory=factory)
    presses: list[int] = []
    button.on_press(lambda: presses.append(1))

    button.close()
    button.close()
    factory.pin(BUTTON).drive_low()

    assert presses == []
    reopened = GpioButton(BUTTON, pin_factory=factory)
    reopened.on_press(lambda: presses.append(2))
    factory.pin(BUTTON).drive_high()
    factory.pin(BUTTON).drive_low()
    assert presses == [2]
    reopened.close()


def test_button_on_a_busy_pin_is_a_hardware_error(factory: Any) -> None:
    busy = LED(BUTTON, pin_factory=factory)

    with pytest.raises(HardwareError, match="button pin"):
        GpioButton(BUTTON, pin_factory=factory)
    busy.close()


def test_button_accepts_pin_names(factory: Any) -> None:
    button = GpioButton(f"GPIO{BUTTON}", pin_factory=factory)
    presses: list[int] = []
    button.on_press(lambda: presses.append(1))

    factory.pin(BUTTON).drive_low()

    assert presses == [1]
    button.close()
