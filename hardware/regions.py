"""Where in a frame a QR code probably is: dense edges in both directions, found cheaply."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from hardware.interfaces import Frame

__all__ = ["Box", "code_regions", "sharp_and_faint_regions"]

# Cells of 8x8 px: a 640x480 frame is 60x80 cells, small enough that every window sum
# comes from one integral image in well under a millisecond.
CELL = 8
# A step between neighbouring pixels that counts as an edge. Sensor noise of sigma 8
# differs by more than this in about 3 % of pixel pairs; a code's module edges, even at
# 40 % contrast, by far more.
EDGE = 24
# The densest 5x5 cells (40 px, a small code's core) must have at least this share of
# pixels with a horizontal edge and with a vertical one. A QR code at 1-3 px a module
# has edges at 30-90 % of pixels both ways; plain walls, gradients and 1-D stripes don't.
MIN_DENSITY = 0.12
CORE_CELLS = 5
# Faint texture: a pass on a dim phone screen, or a label in poor light, has modules only
# 15-40 grey levels apart in the scanning frame, under EDGE. The second look counts steps
# over FAINT_EDGE, or over FAINT_NOISE_SIGMAS times the frame's own noise if that is
# higher, so that a noisy plain wall does not pass for a code. It costs only time: every
# place proposed is decoded, and a decode still has to pass Reed-Solomon.
FAINT_EDGE = 12
FAINT_NOISE_SIGMAS = 3.0
FAINT_MIN_DENSITY = 0.08


class Box(NamedTuple):
    """An upright rectangle of pixels, ``x0 <= x < x1`` and ``y0 <= y < y1``."""

    x0: int
    y0: int
    x1: int
    y1: int

    def grown(self, factor: float, width: int, height: int) -> Box:
        """This box scaled ``factor`` times about its centre, clipped to the frame."""
        cx, cy = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        half_w, half_h = (self.x1 - self.x0) * factor / 2, (self.y1 - self.y0) * factor / 2
        return Box(
            max(0, int(cx - half_w)),
            max(0, int(cy - half_h)),
            min(width, int(cx + half_w + 1)),
            min(height, int(cy + half_h + 1)),
        )

    def scaled(self, sx: float, sy: float) -> Box:
        """The same place in a frame ``sx`` times as wide and ``sy`` times as tall."""
        return Box(
            int(self.x0 * sx), int(self.y0 * sy), int(self.x1 * sx + 1), int(self.y1 * sy + 1)
        )


# Bits set in each byte value: edge maps are packed 8 pixels to a byte, one cell wide.
_POPCOUNT = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)


def _cell_counts(edges: npt.NDArray[np.bool_], rows: int) -> npt.NDArray[np.uint16]:
    """How many pixels of each CELL x CELL cell are edges.

    Packing 8 pixels to a byte and counting bits by table is 4x faster than summing a
    reshaped boolean array, which numpy does with strided loops.
    """
    per_row = _POPCOUNT[np.packbits(edges, axis=1)]
    counts: npt.NDArray[np.uint16] = per_row.reshape(rows, CELL, -1).sum(axis=1, dtype=np.uint16)
    return counts


def _edges(near: Frame, far: Frame, edge: int) -> npt.NDArray[np.bool_]:
    """Where neighbouring pixels differ by more than ``edge``, in uint8 without a widening copy."""
    step: npt.NDArray[np.bool_] = (np.maximum(near, far) - np.minimum(near, far)) > edge
    return step


def _noise_sigma(frame: Frame) -> float:
    """The frame's sensor noise, estimated from every 4th row's steps between neighbours.

    For Gaussian noise of sigma s a step is Gaussian of sigma s*sqrt(2), whose median size
    is 0.954 s. Texture only raises the median, so the estimate errs on the safe side.
    """
    rows = frame[::4]
    steps = np.maximum(rows[:, 1:], rows[:, :-1]) - np.minimum(rows[:, 1:], rows[:, :-1])
    # A median by histogram: bincount on uint8 is far cheaper than sorting.
    counts = np.bincount(steps.ravel(), minlength=256).cumsum()
    median = int(np.searchsorted(counts, counts[-1] / 2))
    return median / 0.954


def _density(frame: Frame, rows: int, cols: int, edge: int) -> npt.NDArray[np.float64]:
    """Per CORE_CELLS x CORE_CELLS window of cells, the share of pixels with an edge both ways."""
    h, w = rows * CELL, cols * CELL
    here = frame[:h, :w]
    across = _edges(here, frame[:h, 1 : w + 1], edge)
    down = _edges(here, frame[1 : h + 1, :w], edge)
    # A QR code has edges both ways; a 1-D barcode or striped cloth only one.
    both = np.minimum(_cell_counts(across, rows), _cell_counts(down, rows)).astype(np.int32)
    integral = np.zeros((rows + 1, cols + 1), dtype=np.int32)
    integral[1:, 1:] = both.cumsum(axis=0).cumsum(axis=1)
    k = CORE_CELLS
    window = integral[k:, k:] - integral[:-k, k:] - integral[k:, :-k] + integral[:-k, :-k]
    density: npt.NDArray[np.float64] = window / float(k * k * CELL * CELL)
    return density


def _pick(
    density: npt.NDArray[np.float64],
    floor: float,
    boxes: list[Box],
    limit: int,
    side: int,
    width: int,
    height: int,
) -> None:
    """Append to ``boxes`` the densest windows above ``floor`` outside every box already in."""
    k = CORE_CELLS
    half = side / 2
    reach = int(half // CELL)
    for box in boxes:
        # Windows centred inside a box already chosen would look at the same code again.
        row0, col0 = box.y0 // CELL - k // 2, box.x0 // CELL - k // 2
        row1, col1 = box.y1 // CELL - k // 2, box.x1 // CELL - k // 2
        density[max(0, row0) : max(0, row1), max(0, col0) : max(0, col1)] = 0
    while len(boxes) < limit:
        index = int(np.argmax(density))
        row, col = divmod(index, density.shape[1])
        if density[row, col] < floor:
            break
        cy, cx = (row + k / 2) * CELL, (col + k / 2) * CELL
        boxes.append(
            Box(
                max(0, int(cx - half)),
                max(0, int(cy - half)),
                min(width, int(cx + half)),
                min(height, int(cy + half)),
            )
        )
        # The next proposal must lie outside this one, or it is the same code again.
        density[max(0, row - reach) : row + reach + 1, max(0, col - reach) : col + reach + 1] = 0


def code_regions(frame: Frame, *, limit: int = 2, side: int = 144) -> list[Box]:
    """Up to ``limit`` boxes of ``side`` px (clipped to the frame) where a code may be, best first.

    Each is centred on a 40 px patch whose pixels change sharply both across and down, the
    texture of QR modules too small to decode. Text and clutter can match too: these are
    places worth a closer look, not detections. Boxes of sharp texture come first; if
    fewer than ``limit`` are found, faint texture fills the rest (see FAINT_EDGE).
    """
    sharp, faint = sharp_and_faint_regions(frame, limit=limit, side=side)
    return sharp + faint


def sharp_and_faint_regions(
    frame: Frame, *, limit: int = 2, side: int = 144
) -> tuple[list[Box], list[Box]]:
    """``code_regions`` as two lists: the boxes of sharp texture, then those of faint texture.

    Together they hold at most ``limit`` boxes; faint texture is looked for only when the
    sharp look found fewer than ``limit``.
    """
    height, width = frame.shape
    # The edge maps are a pixel short one way; the last partial cell is left out.
    rows, cols = (height - 1) // CELL, (width - 1) // CELL
    if rows < CORE_CELLS or cols < CORE_CELLS or limit <= 0:
        return [], []
    boxes: list[Box] = []
    _pick(_density(frame, rows, cols, EDGE), MIN_DENSITY, boxes, limit, side, width, height)
    sharp = len(boxes)
    if sharp < limit:
        faint = max(FAINT_EDGE, round(FAINT_NOISE_SIGMAS * _noise_sigma(frame)))
        density = _density(frame, rows, cols, faint)
        _pick(density, FAINT_MIN_DENSITY, boxes, limit, side, width, height)
    return boxes[:sharp], boxes[sharp:]
