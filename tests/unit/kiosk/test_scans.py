"""The scan source: real decoders on real frames; a frame they cannot read is skipped and
counted, and scanning goes on; a stalled camera is reported, reopened and reported back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from hardware.errors import CameraError
from hardware.interfaces import Capture, Decoder, Frame
from hardware.replay import SceneCamera
from hardware.synthetic import blank_frame, render_code
from hardware.zbar import ZbarDecoder
from hardware.zxing import ZxingDecoder
from kiosk.clock import ManualClock
from kiosk.scans import FrameError, ScanSource

LABEL = "CS1.L.K1.DRILL-01.1.SIGNATURE"
DECODERS: dict[str, Callable[[], Decoder]] = {"zxing-cpp": ZxingDecoder, "pyzbar": ZbarDecoder}


class DriverCamera:
    """A camera whose driver delivers the frames it is given, in order, then blank ones.

    Unlike the replay cameras it checks nothing, as a misbehaving driver would not.
    """

    def __init__(self, frames: list[Any]) -> None:
        self._frames = list(frames)
        self.started = False

    def start(self) -> None:
        self.started = True

    def read(self, timeout: float) -> Frame:
        if not self.started:
            raise CameraError("camera is not started")
        return self._frames.pop(0) if self._frames else blank_frame()

    def capture(self, timeout: float) -> Capture:
        return Capture(self.read(timeout))  # one stream, as a USB camera has

    def stop(self) -> None:
        self.started = False


def source(camera: Any, decoder: Decoder, clock: ManualClock, **hooks: Any) -> ScanSource:
    return ScanSource(camera, decoder, clock, frame_timeout_s=0.5, debounce_s=1.5, **hooks)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - the source runs in threads; no event to await
            await asyncio.sleep(0.01)


async def first_code(scans: ScanSource) -> str:
    async with asyncio.timeout(10):
        async for code in scans:
            return code
    raise AssertionError("the scan source ended")


BAD_FRAMES: dict[str, Any] = {
    "colour": np.zeros((480, 640, 3), np.uint8),
    "float": np.zeros((480, 640), np.float32),
    "one-dimensional": np.zeros(640, np.uint8),
    "not-an-array": None,
}


@pytest.mark.parametrize("frame", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
@pytest.mark.parametrize("make", DECODERS.values(), ids=DECODERS.keys())
async def test_a_frame_of_the_wrong_shape_or_type_is_skipped_and_counted(
    make: Callable[[], Decoder], frame: Any
) -> None:
    camera = DriverCamera([frame, frame, render_code(LABEL)])
    scans = source(camera, make(), ManualClock())
    assert await scans.start()

    assert await first_code(scans) == LABEL  # the code after the bad frames still scans

    assert scans.frame_errors == {FrameError.BAD_FRAME: 2}
    assert scans.last_frame_error is FrameError.BAD_FRAME
    assert scans.frame_error_count == 2


async def test_a_frame_the_decoder_library_fails_on_is_skipped_and_counted() -> None:
    # zxing-cpp refuses images wider than 65,535 pixels: a real library error on a frame
    # of the right type.
    camera = DriverCamera([np.zeros((1, 70_000), np.uint8), render_code(LABEL)])
    scans = source(camera, ZxingDecoder(), ManualClock())
    assert await scans.start()

    assert await first_code(scans) == LABEL

    assert scans.frame_errors == {FrameError.DECODER_ERROR: 1}
    assert scans.last_frame_error is FrameError.DECODER_ERROR


class CrashOnce:
    """The real decoder, raising an undocumented error on its first frame (a library bug)."""

    def __init__(self, decoder: Decoder) -> None:
        self._decoder = decoder
        self.name = decoder.name
        self._crashed = False

    def decode(self, frame: Frame) -> list[str]:
        return self.scan(Capture(frame))

    def scan(self, capture: Capture) -> list[str]:
        if not self._crashed:
            self._crashed = True
            raise MemoryError("the library ran out of scratch space")
        return self._decoder.scan(capture)


async def test_anything_else_a_decoder_raises_on_one_frame_is_skipped_and_counted() -> None:
    camera = DriverCamera([render_code(LABEL), render_code(LABEL)])
    scans = source(camera, CrashOnce(ZxingDecoder()), ManualClock())
    assert await scans.start()

    assert await first_code(scans) == LABEL

    assert scans.frame_errors == {FrameError.DECODER_CRASH: 1}


async def test_a_code_held_in_view_is_one_scan_per_presentation() -> None:
    clock = ManualClock()
    camera = SceneCamera(fps=None)
    scans = source(camera, ZxingDecoder(), clock)
    assert await scans.start()
    camera.show(LABEL, frames=20)
    seen: list[str] = []

    async def collect() -> None:
        async for code in scans:
            seen.append(code)

    task = asyncio.create_task(collect())
    try:
        await until(lambda: not camera.showing)
        await clock.advance(2.0, step=0.5)  # out of view for longer than the gap
        camera.show(LABEL, frames=5)
        await until(lambda: len(seen) >= 2)
    finally:
        task.cancel()
    assert seen == [LABEL, LABEL]


async def test_a_stalled_camera_is_reported_reopened_and_reported_back() -> None:
    clock = ManualClock()
    camera = SceneCamera(fps=None)
    told: list[tuple[bool, str]] = []
    scans = source(camera, ZxingDecoder(), clock, on_camera=lambda ok, why: told.append((ok, why)))
    assert await scans.start()
    camera.fail()
    task = asyncio.create_task(first_code(scans))
    try:
        await until(lambda: bool(told))
        assert told == [(False, "camera fault: camera failed")]
        assert scans.camera_ok is False
        camera.resume()
        camera.show(LABEL)
        while not task.done():
            await clock.advance(0.5, step=0.1)  # the source waits before reopening
        assert task.result() == LABEL
    finally:
        task.cancel()
    assert told[-1] == (True, "camera back")
    assert scans.camera_ok is True


async def test_a_camera_that_will_not_start_is_reported_not_raised() -> None:
    clock = ManualClock()

    class WontStart(SceneCamera):
        def start(self) -> None:
            raise CameraError("no camera on the ribbon")

    told: list[tuple[bool, str]] = []
    scans = source(
        WontStart(fps=None), ZxingDecoder(), clock, on_camera=lambda ok, why: told.append((ok, why))
    )
    started = asyncio.create_task(scans.start())
    while not started.done():
        await clock.advance(0.5, step=0.1)
    assert started.result() is False
    assert told == [(False, "camera fault: no camera on the ribbon")]
