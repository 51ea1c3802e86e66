"""The Raspberry Pi camera backend (picamera2); the only module that imports picamera2."""

from __future__ import annotations

import logging
import threading
from typing import Any

from hardware.errors import CameraError
from hardware.interfaces import Capture, Frame

__all__ = ["PiCamera"]

logger = logging.getLogger(__name__)


class PiCamera:
    """Serves the Y plane of picamera2's low-resolution YUV420 stream as the frame.

    Scanning reads the small ``lores`` stream, whose luminance plane needs no colour
    conversion. ``capture`` also hands over the Y plane of the full-resolution ``main``
    stream from the same request (the same instant, the same field of view), which the
    decoder pipeline reads where a code is too small in ``lores``. The default sizes are
    4:3 so neither stream is stretched; on a Camera Module 3 at 30 fps both are cut from
    the middle 1728x1296 of its 2x2-binned mode, so ``main`` at that size is every pixel
    the sensor gives at that rate.
    """

    def __init__(
        self,
        *,
        camera_num: int = 0,
        main_size: tuple[int, int] = (1728, 1296),  # 4:3 like lores, so lores is not stretched
        lores_size: tuple[int, int] = (640, 480),
        fps: float = 30.0,
        autofocus: bool = True,
        exposure_us: int | None = None,
        focus: float | None = None,
    ) -> None:
        self._camera_num = camera_num
        self._main_size = main_size
        self._lores_size = lores_size
        self._fps = fps
        self._autofocus = autofocus
        self._exposure_us = exposure_us
        self._focus = focus
        self._lock = threading.Lock()
        self._picam2: Any = None
        self._size = lores_size
        self._full_size = main_size

    def start(self) -> None:
        """Open and start the camera; CameraError if there is none or it will not start."""
        with self._lock:
            if self._picam2 is not None:
                return
            try:
                # Imported here: picamera2 and libcamera only import on a Raspberry Pi.
                # libcamera ships no type information; pyproject's mypy overrides cover it.
                from libcamera import controls
                from picamera2 import Picamera2
            except ImportError as exc:
                raise CameraError(
                    f"picamera2 is not available ({exc}); on Raspberry Pi OS install "
                    "python3-picamera2 and use a venv made with --system-site-packages"
                ) from exc
            picam2: Any = None
            try:
                picam2 = Picamera2(self._camera_num)
                settings: dict[str, Any] = {"FrameRate": self._fps}
                if self._exposure_us is not None:
                    # A fixed exposure (short, for codes waved past) needs AE off to hold.
                    settings["AeEnable"] = False
                    settings["ExposureTime"] = self._exposure_us
                # Only cameras with a focus motor (Camera Module 3) list AfMode; setting
                # it on a fixed-focus camera is an error.
                if "AfMode" in picam2.camera_controls:
                    if self._focus is not None:
                        settings["AfMode"] = controls.AfModeEnum.Manual
                        settings["LensPosition"] = self._focus
                    elif self._autofocus:
                        settings["AfMode"] = controls.AfModeEnum.Continuous
                # YUV420 for main as well: its Y plane is the luminance the decoder reads.
                config = picam2.create_video_configuration(
                    main={"size": self._main_size, "format": "YUV420"},
                    lores={"size": self._lores_size, "format": "YUV420"},
                    controls=settings,
                )
                picam2.configure(config)
                picam2.start()
                # picamera2 may round the requested size to what the ISP can produce.
                width, height = picam2.stream_configuration("lores")["size"]
                main_w, main_h = picam2.stream_configuration("main")["size"]
            except Exception as exc:
                if picam2 is not None:
                    _close_quietly(picam2)
                raise CameraError(f"cannot start camera {self._camera_num}: {exc}") from exc
            self._picam2 = picam2
            self._size = (int(width), int(height))
            self._full_size = (int(main_w), int(main_h))

    def read(self, timeout: float) -> Frame:
        """The Y plane of the next lores frame: a view into picamera2's array, not a copy."""
        picam2 = self._picam2
        if picam2 is None:
            raise CameraError("camera is not started")
        try:
            # picamera2 treats a falsy wait (0) as "don't wait, return a Job", so never
            # pass it zero.
            array = picam2.capture_array("lores", wait=max(timeout, 0.001))
        except TimeoutError as exc:
            # A timed-out capture stays queued and would swallow the next frame.
            picam2.cancel_all_and_flush()
            raise CameraError(f"no frame within {timeout} s") from exc
        except Exception as exc:
            raise CameraError(f"frame capture failed: {exc}") from exc
        return _y_plane(array, self._size)

    def capture(self, timeout: float) -> Capture:
        """The Y planes of the next request's lores and main streams (copies, taken at once).

        One ``capture_request`` holds both streams of the same frame; the arrays are
        copied out with ``make_array`` and the request released before decoding, so a
        slow decode never holds a camera buffer.
        """
        picam2 = self._picam2
        if picam2 is None:
            raise CameraError("camera is not started")
        try:
            request = picam2.capture_request(wait=max(timeout, 0.001))
        except TimeoutError as exc:
            picam2.cancel_all_and_flush()
            raise CameraError(f"no frame within {timeout} s") from exc
        except Exception as exc:
            raise CameraError(f"frame capture failed: {exc}") from exc
        try:
            lores = request.make_array("lores")
            main = request.make_array("main")
        except Exception as exc:
            raise CameraError(f"reading the captured frame failed: {exc}") from exc
        finally:
            request.release()
        return Capture(_y_plane(lores, self._size), _y_plane(main, self._full_size))

    def stop(self) -> None:
        """Stop and close the camera. Safe to call twice."""
        with self._lock:
            picam2, self._picam2 = self._picam2, None
        if picam2 is not None:
            _close_quietly(picam2)


def _y_plane(array: Any, size: tuple[int, int]) -> Frame:
    """The luminance of a YUV420 array picamera2 made: (height * 3/2, stride), Y rows first,
    each padded to the stride."""
    width, height = size
    frame: Frame = array[:height, :width]
    return frame


def _close_quietly(picam2: Any) -> None:
    try:
        picam2.stop()
        picam2.close()
    except Exception:
        # Closing is best effort: the camera may already be gone (cable pulled).
        logger.exception("closing the camera failed")
