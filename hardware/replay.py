"""Cameras that serve prepared frames: a replayed sequence, or a scene a test stages.

Both serve a full-resolution frame beside the scanning frame when they are given one
(a ``Capture``), as picamera2 does from one request, so the kiosk's whole decoder
pipeline runs off a Pi.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Literal

import numpy as np
from PIL import Image

from hardware.errors import CameraError
from hardware.interfaces import Capture, Frame
from hardware.synthetic import blank_frame, render_code

__all__ = ["Clock", "FrameSource", "ReplayCamera", "SceneCamera", "Sleep"]

Clock = Callable[[], float]
Sleep = Callable[[float], None]
# An image already in memory, the path of a PNG/JPEG (any file Pillow opens), or a
# scanning frame with its full-resolution twin.
FrameSource = Frame | str | os.PathLike[str] | Capture


def _check_frame(frame: Frame) -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 2 or frame.dtype != np.uint8:
        raise ValueError("a frame must be a 2-D uint8 numpy array (height x width)")


def _read_only(frame: Frame) -> Frame:
    """A read-only view: frames are served again and again, so no reader may edit one."""
    view = frame.view()
    view.flags.writeable = False
    return view


def _frozen(frame: Frame) -> Frame:
    """``frame`` itself if no one can write to it already, else a read-only view."""
    return frame if not frame.flags.writeable else _read_only(frame)


def _check_capture(capture: Capture) -> Capture:
    """``capture`` checked and made read-only; its full frame no smaller than its frame."""
    _check_frame(capture.frame)
    if capture.full is None:
        return Capture(_frozen(capture.frame))
    _check_frame(capture.full)
    (height, width), (full_h, full_w) = capture.frame.shape, capture.full.shape
    if full_h < height or full_w < width:
        raise ValueError(
            f"a full frame ({full_w}x{full_h}) must be at least the frame's size ({width}x{height})"
        )
    return Capture(_frozen(capture.frame), _frozen(capture.full))


def _check_timeout(timeout: float) -> None:
    if timeout < 0:
        raise ValueError(f"timeout must not be negative, got {timeout}")


class _Pacer:
    """Spaces frames at least 1/fps apart on an injected clock, the way a sensor would.

    A slow reader is never handed a burst of overdue frames: the next frame is due one
    period after the last one was served, not on a fixed grid.
    """

    def __init__(self, fps: float | None, clock: Clock) -> None:
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive or None, got {fps}")
        self._period = 0.0 if fps is None else 1.0 / fps
        self._clock = clock
        self._due: float | None = None

    def reset(self) -> None:
        """The next frame is due at once."""
        self._due = None

    def reserve(self, timeout: float) -> float | None:
        """Claim the next frame slot and return how long to wait for it.

        None, and no slot claimed, if the frame is not due within ``timeout``.
        """
        now = self._clock()
        due = now if self._due is None else max(self._due, now)
        if due - now > timeout:
            return None
        self._due = due + self._period
        return due - now


class ReplayCamera:
    """A Camera that replays a fixed sequence of frames or image files at ``fps``.

    ``fps=None`` serves frames as fast as they are read. Files are loaded (and converted
    to greyscale) as they are served, so a long recording need not fit in memory.
    ``start()`` rewinds to the first frame. Served frames are read-only.
    """

    def __init__(
        self,
        frames: Iterable[FrameSource],
        *,
        fps: float | None = 30.0,
        loop: bool = False,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._sources: list[FrameSource] = []
        for source in frames:
            if isinstance(source, Capture):
                self._sources.append(_check_capture(source))
            elif isinstance(source, np.ndarray):
                _check_frame(source)
                self._sources.append(_read_only(source))
            else:
                self._sources.append(source)
        if not self._sources:
            raise ValueError("a ReplayCamera needs at least one frame")
        self._loop = loop
        self._sleep = sleep
        self._pacer = _Pacer(fps, clock)
        self._lock = threading.Lock()
        self._started = False
        self._index = 0
        self._served = 0

    @property
    def frames_served(self) -> int:
        """How many frames ``read`` has returned since the camera was made."""
        with self._lock:
            return self._served

    def start(self) -> None:
        """Open the replay at its first frame."""
        with self._lock:
            self._started = True
            self._index = 0
            self._pacer.reset()

    def read(self, timeout: float) -> Frame:
        """The next frame once it is due; CameraError if stopped, exhausted or too slow."""
        return self.capture(timeout).frame

    def capture(self, timeout: float) -> Capture:
        """The next frame, with its full-resolution twin if it was given one; as ``read``."""
        _check_timeout(timeout)
        with self._lock:
            if not self._started:
                raise CameraError("camera is not started")
            if self._index >= len(self._sources):
                if not self._loop:
                    raise CameraError(f"replay exhausted after {len(self._sources)} frames")
                self._index = 0
            delay = self._pacer.reserve(timeout)
            if delay is not None:
                source = self._sources[self._index]
                self._index += 1
        if delay is None:
            self._sleep(timeout)
            raise CameraError(f"no frame within {timeout} s")
        if delay > 0:
            self._sleep(delay)
        frame = self._load(source)
        with self._lock:
            if not self._started:
                raise CameraError("camera stopped while waiting for a frame")
            self._served += 1
        return frame

    def stop(self) -> None:
        """Close the replay; reads fail until the next ``start()``."""
        with self._lock:
            self._started = False

    @staticmethod
    def _load(source: FrameSource) -> Capture:
        if isinstance(source, Capture):
            return source
        if isinstance(source, np.ndarray):
            return Capture(source)
        try:
            with Image.open(source) as image:
                frame = np.array(image.convert("L"), dtype=np.uint8)
        except (OSError, ValueError) as exc:
            raise CameraError(f"cannot load replay frame {os.fspath(source)!r}: {exc}") from exc
        return Capture(_read_only(frame))


class SceneCamera:
    """A thread-safe Camera showing a blank view until told to put a code in front of it.

    ``show(text)`` renders (once, then cached) a real QR code for ``text``;
    ``show_frame`` shows any frame and ``show_capture`` a frame with its full-resolution
    twin. Each lasts ``frames`` reads, or until ``clear()`` if ``frames`` is None.
    ``stall()`` makes reads time out and ``fail()`` makes them fail at once, until
    ``resume()``. Frames come at most ``fps`` a second on the
    injected clock; served frames are read-only.
    """

    def __init__(
        self,
        *,
        width: int = 640,
        height: int = 480,
        fps: float | None = 30.0,
        render: Callable[[str], Frame] | None = None,
        blank: Frame | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._render = render or partial(render_code, width=width, height=height)
        if blank is None:
            blank = blank_frame(width, height)
        _check_frame(blank)
        self._blank = _read_only(blank)
        self._sleep = sleep
        self._pacer = _Pacer(fps, clock)
        self._lock = threading.Lock()
        self._cache: dict[str, Frame] = {}
        self._started = False
        self._scene: Capture | None = None
        self._remaining: int | None = None
        self._fault: Literal["stall", "fail"] | None = None
        self._served = 0

    @property
    def frames_served(self) -> int:
        """How many frames ``read`` has returned since the camera was made."""
        with self._lock:
            return self._served

    @property
    def showing(self) -> bool:
        """Whether a code (or shown frame) is in view for the next read."""
        with self._lock:
            return self._scene is not None

    @property
    def blank(self) -> Frame:
        """The frame served when nothing is in view."""
        return self._blank

    def rendered(self, text: str) -> Frame:
        """The frame ``show(text)`` serves, rendered on first use."""
        with self._lock:
            frame = self._cache.get(text)
        if frame is None:
            # Rendered outside the lock so a slow render never holds up read().
            rendered = self._render(text)
            _check_frame(rendered)
            with self._lock:
                frame = self._cache.setdefault(text, _read_only(rendered))
        return frame

    def show(self, text: str, frames: int | None = None) -> None:
        """Put the QR code for ``text`` in view for ``frames`` reads (None: until clear)."""
        self.show_frame(self.rendered(text), frames)

    def show_frame(self, frame: Frame, frames: int | None = None) -> None:
        """Put ``frame`` in view for ``frames`` reads (None: until ``clear()``)."""
        self.show_capture(Capture(frame), frames)

    def show_capture(self, capture: Capture, frames: int | None = None) -> None:
        """Put ``capture`` (a frame and its full-resolution twin) in view, as ``show_frame``."""
        checked = _check_capture(capture)
        if frames is not None and frames < 1:
            raise ValueError(f"frames must be at least 1 or None, got {frames}")
        with self._lock:
            self._scene = checked
            self._remaining = frames

    def clear(self) -> None:
        """Take whatever is in view away; reads serve the blank frame."""
        with self._lock:
            self._scene = None
            self._remaining = None

    def stall(self) -> None:
        """Deliver no frames: each read waits its timeout, then raises CameraError."""
        with self._lock:
            self._fault = "stall"

    def fail(self) -> None:
        """Break the camera: each read raises CameraError at once."""
        with self._lock:
            self._fault = "fail"

    def resume(self) -> None:
        """Undo ``stall()`` or ``fail()``."""
        with self._lock:
            self._fault = None

    def start(self) -> None:
        """Open the camera; the first frame is due at once."""
        with self._lock:
            self._started = True
            self._pacer.reset()

    def read(self, timeout: float) -> Frame:
        """The view once the next frame is due; CameraError if stopped, stalled or failed."""
        return self.capture(timeout).frame

    def capture(self, timeout: float) -> Capture:
        """The view with its full-resolution twin if it has one; as ``read``."""
        _check_timeout(timeout)
        with self._lock:
            if not self._started:
                raise CameraError("camera is not started")
            if self._fault == "fail":
                raise CameraError("camera failed")
            delay = None if self._fault == "stall" else self._pacer.reserve(timeout)
        if delay is None:
            self._sleep(timeout)
            raise CameraError(f"no frame within {timeout} s")
        if delay > 0:
            self._sleep(delay)
        # The view is taken after the wait, so a show() made meanwhile is seen at once.
        with self._lock:
            if not self._started:
                raise CameraError("camera stopped while waiting for a frame")
            self._served += 1
            if self._scene is None:
                return Capture(self._blank)
            scene = self._scene
            if self._remaining is not None:
                self._remaining -= 1
                if not self._remaining:
                    self._scene = None
                    self._remaining = None
            return scene

    def stop(self) -> None:
        """Close the camera; reads fail until the next ``start()``."""
        with self._lock:
            self._started = False
