"""The kiosk's QR reader: a quick look at the small frame, then closer looks where a code seems."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter

from hardware.interfaces import Capture, Frame
from hardware.regions import Box, sharp_and_faint_regions
from hardware.zxing import ZxingDecoder

__all__ = ["Attempt", "ScanPipeline"]

Attempt = Literal["fast", "closer", "sharpened", "scaled", "binarizer", "inverted"]

# A box zxing-cpp reported round a symbol it could not read is grown this much, so that
# the quiet zone and any corner it misplaced are inside the closer look.
_GROW_SIGHTED = 1.5


class ScanPipeline:
    """Reads QR codes from a Capture within a per-frame time budget.

    1. ``fast``: zxing-cpp on the small frame, as every frame gets. Most codes end here.
    2. ``closer``: where the small frame shows a symbol zxing-cpp saw but could not read, or
       a patch with the texture of modules too small to read (sharp texture first, then
       faint: a dim screen), the same place is decoded from the full-resolution frame (up
       to ``regions`` places), where each module has more pixels. Without a full frame the
       small frame's patch is enlarged instead.
    3. Retries on the most promising place while time remains, unless the only places are
       of faint texture (most scenes have some; the median frame must stay cheap): the
       patch ``sharpened``
       by an unsharp mask (focus blur and slight motion smear modules into grey), then
       ``scaled`` up 1.5 times (modules of 2-3 px turned off the pixel grid sample better
       enlarged), the ``binarizer`` that thresholds the whole patch at once (better under
       a soft glare edge) and the patch ``inverted`` (light-on-dark screens).

    A retry starts only while the time since the frame arrived is under ``budget_s``, so
    a frame full of code-like clutter costs at most a bounded amount. The clock is
    injected so tests can run out the budget without being slow.
    """

    name: str = "zxing-cpp"

    def __init__(
        self,
        *,
        # 15 ms of a Pi 4's 33 ms frame, leaving time for the last look, the capture copy
        # and the scan loop (docs/benchmarks.md, Decoders).
        budget_s: float = 0.015,
        regions: int = 2,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if budget_s < 0:
            raise ValueError(f"budget_s must not be negative, got {budget_s}")
        if regions < 0:
            raise ValueError(f"regions must not be negative, got {regions}")
        self._budget = budget_s
        self._regions = regions
        self._clock = clock
        self._fast = ZxingDecoder()
        # Global histogram has no local window, so a glare edge across the code does not
        # split it into two thresholds; on its own it reads far less (docs/benchmarks.md).
        self._global = ZxingDecoder(binarizer="global-histogram")
        self.reads: Counter[Attempt] = Counter()
        """Which attempt read each frame's codes (counted for the bench)."""
        self.looks: Counter[Attempt] = Counter()
        """How many times each attempt ran, read or not (what the frames cost)."""

    def decode(self, frame: Frame) -> list[str]:
        """The codes in a frame alone: the pipeline without a full-resolution stream."""
        return self.scan(Capture(frame))

    def scan(self, capture: Capture) -> list[str]:
        """The texts of every QR code read in ``capture`` (possibly none)."""
        started = self._clock()
        frame, full = capture
        sighting = self._fast.sight(frame)
        if sighting.texts:
            self.reads["fast"] += 1
            return sighting.texts
        height, width = frame.shape
        sharp, faint = sharp_and_faint_regions(frame, limit=self._regions)
        places = [box.grown(_GROW_SIGHTED, width, height) for box in sighting.unread]
        places += sharp
        # Retries only where zxing-cpp saw a symbol or the texture is sharp: faint texture
        # is in most scenes without a code, and its closer look alone is what reads a dim
        # screen; retrying there too would cost every such frame the whole budget.
        retry = bool(places)
        places = (places + faint)[: self._regions]
        if not places:
            return []
        texts, crops = self._look_closer(started, frame, full, places)
        if texts or not retry or not crops:
            return texts
        # The first place is the most promising: sighted by zxing-cpp, else the sharpest.
        return self._retry(started, crops[0])

    def _look_closer(
        self, started: float, frame: Frame, full: Frame | None, places: list[Box]
    ) -> tuple[list[str], list[Frame]]:
        """The codes read at the first place that has one, and the crops looked at."""
        crops: list[Frame] = []
        for place in places:
            if self._spent(started):
                break
            crop = _closer(frame, full, place)
            crops.append(crop)
            self.looks["closer"] += 1
            texts = self._fast.decode(crop)
            if texts:
                self.reads["closer"] += 1
                return texts, crops
        return [], crops

    def _retry(self, started: float, best: Frame) -> list[str]:
        """``best`` read again in other ways, one after another while the budget lasts."""
        retries: list[tuple[Attempt, Callable[[], list[str]]]] = [
            ("sharpened", lambda: self._fast.decode(_sharpened(best))),
            ("scaled", lambda: self._fast.decode(_enlarged(best, _whole(best), 3, 2))),
            ("binarizer", lambda: self._global.decode(best)),
            ("inverted", lambda: self._fast.decode(np.subtract(255, best, dtype=np.uint8))),
        ]
        for attempt, retry in retries:
            if self._spent(started):
                break
            self.looks[attempt] += 1
            texts = retry()
            if texts:
                self.reads[attempt] += 1
                return texts
        return []

    def _spent(self, started: float) -> bool:
        return self._clock() - started >= self._budget


def _whole(frame: Frame) -> Box:
    height, width = frame.shape
    return Box(0, 0, width, height)


def _closer(frame: Frame, full: Frame | None, place: Box) -> Frame:
    """``place`` of ``frame`` with more pixels: cut from ``full``, or enlarged if none."""
    if full is None:
        return _enlarged(frame, place, 2, 1)
    height, width = frame.shape
    sx, sy = full.shape[1] / width, full.shape[0] / height
    x0, y0, x1, y1 = place.scaled(sx, sy)
    # A view, not a copy: zxing-cpp reads strided arrays in place.
    return full[y0:y1, x0:x1]


def _enlarged(frame: Frame, place: Box, numerator: int, denominator: int) -> Frame:
    """``place`` of ``frame`` resized ``numerator / denominator`` times, bilinear.

    Resampling adds no detail, but zxing-cpp samples each module at its centre, and a
    2 px module turned 45 degrees has few pixel centres well inside it until enlarged.
    """
    x0, y0, x1, y1 = place
    patch = Image.fromarray(np.ascontiguousarray(frame[y0:y1, x0:x1]))
    size = ((x1 - x0) * numerator // denominator, (y1 - y0) * numerator // denominator)
    return np.asarray(patch.resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)


def _sharpened(frame: Frame) -> Frame:
    """``frame`` with its edges steepened by an unsharp mask: ``frame + 1.5 (frame - blur)``.

    Focus blur and a little motion spread each module into its neighbours until the
    binarizer's local threshold sees grey; subtracting a blurred copy pulls modules of
    2-4 px back apart. The blur is a 5x5 box (radius 2, the spread to undo), which Pillow
    runs in a third of the time of its Gaussian UnsharpMask and reads as many codes.
    """
    patch = np.ascontiguousarray(frame)
    blur = np.asarray(Image.fromarray(patch).filter(ImageFilter.BoxBlur(2)), dtype=np.int16)
    here = patch.astype(np.int16)
    # int16 holds 255 + 1.5 * 255 with room; >> 1 halves without a float copy.
    steeper = here + (((here - blur) * 3) >> 1)
    return np.clip(steeper, 0, 255).astype(np.uint8)
