"""The scan source: camera → decoder → debounce, as one async iterator of fresh codes.

Used by the kiosk's scan loop and by zero-touch enrolment alike. It owns the camera (and
the lock around it, so a reconfiguration never stops it mid-read), reopens it when it
stalls, and counts frames the decoder cannot read instead of letting one stop the kiosk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum

from hardware.errors import CameraError, DecoderError
from hardware.interfaces import Camera, Decoder
from kiosk.clock import Clock
from kiosk.debounce import Debouncer
from kiosk.health import FrameStats

log = logging.getLogger(__name__)

# Told when the camera fails (False, why) and when frames flow again (True, "camera back").
CameraHook = Callable[[bool, str], None]


class FrameError(StrEnum):
    """Why one frame gave no codes; the frame is skipped and scanning goes on."""

    BAD_FRAME = "bad_frame"  # not a 2-D uint8 image (a driver or pipeline fault)
    DECODER_ERROR = "decoder_error"  # the decoder library failed on this frame
    DECODER_CRASH = "decoder_crash"  # the decoder raised something it does not document


@dataclass(frozen=True, slots=True)
class FrameRead:
    """What one frame gave: its codes, the decode time, and why it gave none if it failed."""

    codes: list[str]
    decode_s: float
    error: FrameError | None = None


class ScanSource:
    """Fresh codes from the camera, one per presentation; ``async for code in source``."""

    def __init__(
        self,
        camera: Camera,
        decoder: Decoder,
        clock: Clock,
        *,
        frame_timeout_s: float,
        debounce_s: float,
        on_camera: CameraHook | None = None,
        on_frame: Callable[[], None] | None = None,
    ) -> None:
        self.camera = camera
        self.decoder = decoder
        self._clock = clock
        self._frame_timeout_s = frame_timeout_s
        self._on_camera = on_camera
        self._on_frame = on_frame
        self.debouncer = Debouncer(debounce_s)
        self.frames = FrameStats()
        self.camera_ok = True
        # Counted by reason for the status message; never one log line per frame.
        self.frame_errors: Counter[FrameError] = Counter()
        self.last_frame_error: FrameError | None = None
        # Held around every use of the camera, so a reconfiguration never stops it mid-read.
        self._lock = asyncio.Lock()

    # -- one frame: the only place that reads and decodes -----------------------------------

    def read_codes(self) -> FrameRead:
        """Read one frame and decode it; blocking, so it runs in a worker thread.

        One thread hop per frame: read and decode together, off the event loop. Raises
        CameraError if no frame comes; a frame the decoder cannot read is a FrameRead
        with its error, never an exception.
        """
        # The scanning frame and, where the camera has one, the full-resolution frame of
        # the same request: the decoder rereads small codes from the latter.
        capture = self.camera.capture(self._frame_timeout_s)
        # The decode is real work on this CPU, so it is timed on the real clock.
        started = time.perf_counter()
        try:
            codes = self.decoder.scan(capture)
        except DecoderError as exc:
            return self._failed(FrameError.DECODER_ERROR, exc, started)
        except (ValueError, TypeError, AttributeError) as exc:
            # The decoders refuse a frame of the wrong shape or type with ValueError; a
            # frame that is not an array at all fails on its attributes.
            return self._failed(FrameError.BAD_FRAME, exc, started)
        # Anything else a third-party decoder raises on one frame must not stop the kiosk.
        except Exception as exc:
            return self._failed(FrameError.DECODER_CRASH, exc, started)
        return FrameRead(codes, time.perf_counter() - started)

    def _failed(self, error: FrameError, exc: Exception, started: float) -> FrameRead:
        if not self.frame_errors[error]:
            # The first of its kind in full; the rest are counted and shown in the status.
            log.warning("skipped a frame (%s): %s", error, exc, exc_info=exc)
        return FrameRead([], time.perf_counter() - started, error)

    # -- the stream --------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[str]:
        return self._codes()

    async def _codes(self) -> AsyncIterator[str]:
        while True:
            try:
                async with self._lock:
                    read = await asyncio.to_thread(self.read_codes)
            except CameraError as exc:
                await self.fault(exc)
                continue
            now = self._clock.monotonic()
            self.frames.frame(now, read.decode_s)
            if read.error is not None:
                self.frame_errors[read.error] += 1
                self.last_frame_error = read.error
            if not self.camera_ok:
                self.camera_ok = True
                if self._on_camera is not None:
                    self._on_camera(True, "camera back")
            if self._on_frame is not None:
                self._on_frame()
            for code in self.debouncer.fresh(read.codes, now):
                yield code

    @property
    def frame_error_count(self) -> int:
        """Frames skipped since start, whatever the reason."""
        return sum(self.frame_errors.values())

    # -- the camera's life -------------------------------------------------------------------

    async def start(self) -> bool:
        """Open the camera; on failure report it and return False (the stream keeps trying)."""
        try:
            async with self._lock:
                await asyncio.to_thread(self.camera.start)
        except CameraError as exc:
            await self.fault(exc)
            return False
        return True

    async def stop(self) -> None:
        """Release the camera."""
        await asyncio.to_thread(self.camera.stop)

    async def fault(self, exc: CameraError) -> None:
        """Report a camera fault once, then reopen it: a stalled pipeline usually comes back."""
        if self.camera_ok:
            self.camera_ok = False
            if self._on_camera is not None:
                self._on_camera(False, f"camera fault: {exc}")
        async with self._lock:
            with contextlib.suppress(CameraError):
                await asyncio.to_thread(self.camera.stop)
                await asyncio.to_thread(self.camera.start)
        await self._clock.sleep(0.5)

    async def replace_camera(self, camera: Camera) -> str | None:
        """Swap in a new camera (new settings); why it would not start, if it did not."""
        async with self._lock:
            await asyncio.to_thread(self.camera.stop)
            self.camera = camera
            self.frames.reset()
            try:
                await asyncio.to_thread(camera.start)
            except CameraError as exc:
                # The stream shows the fault and keeps trying to reopen it.
                return f"camera: {exc}"
        return None
