"""PiCamera hands over both streams of one picamera2 request, off a Pi, through a stand-in.

picamera2 only imports on a Raspberry Pi, so these tests put a small stand-in module with
picamera2's own call shapes (``capture_request``, ``CompletedRequest.make_array`` and
``release``, YUV420 arrays of height x 3/2 rows) where the import looks for it. The
``pi`` marker's tests check the same on the real camera.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import pytest

from hardware.errors import CameraError
from hardware.picamera import PiCamera

LORES, MAIN = (640, 480), (1728, 1296)


def yuv420(size: tuple[int, int], luma: int, stride: int) -> np.ndarray:
    """A YUV420 buffer as picamera2's make_array returns it: Y rows, then U and V."""
    width, height = size
    array = np.full((height * 3 // 2, stride), 128, dtype=np.uint8)
    array[:height, :width] = luma
    return array


class Request:
    def __init__(self, camera: FakePicamera2) -> None:
        self.camera = camera

    def make_array(self, name: str) -> np.ndarray:
        if self.camera.broken:
            raise RuntimeError("failed to find buffer")
        if name == "lores":
            return yuv420(LORES, 40, 704)
        return yuv420(MAIN, 200, 1792)

    def release(self) -> None:
        self.camera.released += 1


class FakePicamera2:
    last: FakePicamera2 | None = None

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_controls: dict[str, Any] = {}
        self.config: dict[str, Any] = {}
        self.released = 0
        self.broken = False
        FakePicamera2.last = self

    def create_video_configuration(self, **config: Any) -> dict[str, Any]:
        return config

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def start(self) -> None:
        pass

    def stream_configuration(self, name: str) -> dict[str, Any]:
        return {"size": self.config[name]["size"]}

    def capture_request(self, wait: float | None = None) -> Request:
        assert wait, "a falsy wait makes picamera2 return a Job"
        return Request(self)

    def cancel_all_and_flush(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def camera(monkeypatch: pytest.MonkeyPatch) -> PiCamera:
    picamera2 = types.ModuleType("picamera2")
    picamera2.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    libcamera = types.ModuleType("libcamera")
    libcamera.controls = types.SimpleNamespace()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", picamera2)
    monkeypatch.setitem(sys.modules, "libcamera", libcamera)
    camera = PiCamera()
    camera.start()
    return camera


def test_a_capture_holds_the_y_planes_of_both_streams_of_one_request(camera: PiCamera) -> None:
    capture = camera.capture(1.0)

    assert capture.frame.shape == (480, 640)
    assert capture.full is not None
    assert capture.full.shape == (1296, 1728)
    assert (capture.frame == 40).all()  # the strides' padding and the chroma are cut off
    assert (capture.full == 200).all()
    assert FakePicamera2.last is not None
    assert FakePicamera2.last.released == 1  # the buffer goes back before decoding


def test_both_streams_are_asked_for_as_yuv420(camera: PiCamera) -> None:
    assert FakePicamera2.last is not None
    config = FakePicamera2.last.config
    assert config["main"] == {"size": MAIN, "format": "YUV420"}
    assert config["lores"] == {"size": LORES, "format": "YUV420"}


def test_a_request_that_cannot_be_read_is_a_camera_error_and_still_released(
    camera: PiCamera,
) -> None:
    assert FakePicamera2.last is not None
    FakePicamera2.last.broken = True

    with pytest.raises(CameraError, match="reading the captured frame failed"):
        camera.capture(1.0)
    assert FakePicamera2.last.released == 1


@pytest.mark.pi
def test_on_a_pi_one_request_gives_both_streams_at_their_sizes() -> None:
    # Runs only where picamera2 imports (Raspberry Pi OS with a camera attached).
    pytest.importorskip("picamera2")
    camera = PiCamera()
    camera.start()
    try:
        capture = camera.capture(2.0)
    finally:
        camera.stop()

    assert capture.frame.shape == (480, 640)
    assert capture.full is not None
    assert capture.full.shape == (1296, 1728)
