"""Synthetic camera frames: real QR codes rendered with segno, and ways to spoil them."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import segno
from PIL import Image, ImageFilter

from hardware.interfaces import Frame

__all__ = ["blank_frame", "code_tile", "degrade", "render_code"]


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")


def _check_level(name: str, value: int) -> None:
    if not 0 <= value <= 255:
        raise ValueError(f"{name} must be a grey level in 0..255, got {value}")


def _to_frame(values: npt.NDArray[np.floating[Any]]) -> Frame:
    return np.ascontiguousarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


@lru_cache(maxsize=256)
def _modules(text: str, error: str) -> Frame:
    """The symbol's dark modules (1) and light modules (0), without a quiet zone."""
    # make_qr never falls back to Micro QR; boost_error=False keeps the level we asked
    # for (segno otherwise silently raises it when the symbol has room to spare).
    # Cached because segno's pure-Python mask search takes ~3 ms, 50x the numpy work.
    qr = segno.make_qr(text, error=error, boost_error=False)
    size = len(qr.matrix)
    # frombuffer over bytes is read-only, so no caller can spoil the cached copy.
    return np.frombuffer(b"".join(qr.matrix), dtype=np.uint8).reshape(size, size)


def code_tile(
    text: str,
    *,
    module_px: int = 4,
    quiet_zone: int = 4,
    background: int = 200,
    foreground: int = 20,
    error: str = "M",
) -> Frame:
    """The QR code for ``text`` alone, with its quiet zone, ``module_px`` pixels a module."""
    if module_px < 1:
        raise ValueError(f"module_px must be at least 1, got {module_px}")
    if quiet_zone < 0:
        raise ValueError(f"quiet_zone must not be negative, got {quiet_zone}")
    _check_level("background", background)
    _check_level("foreground", foreground)
    dark = np.pad(_modules(text, error.upper()).astype(bool), quiet_zone, constant_values=False)
    dark = np.repeat(np.repeat(dark, module_px, axis=0), module_px, axis=1)
    return np.where(dark, np.uint8(foreground), np.uint8(background))


def _paste(frame: Frame, tile: Frame, center: tuple[float, float]) -> None:
    """Copy ``tile`` into ``frame`` centred on ``center``, clipping what falls outside."""
    th, tw = tile.shape
    fh, fw = frame.shape
    top = round(center[1] - th / 2)
    left = round(center[0] - tw / 2)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + th, fh), min(left + tw, fw)
    if y0 < y1 and x0 < x1:
        frame[y0:y1, x0:x1] = tile[y0 - top : y1 - top, x0 - left : x1 - left]


def render_code(
    text: str,
    *,
    width: int = 640,
    height: int = 480,
    module_px: int = 4,
    quiet_zone: int = 4,
    center: tuple[float, float] | None = None,
    angle: float = 0.0,
    background: int = 200,
    foreground: int = 20,
    error: str = "M",
) -> Frame:
    """A ``height`` x ``width`` frame showing the QR code for ``text`` on a plain background.

    ``center`` is the code's centre as (x, y) pixels (default: the middle of the frame);
    ``angle`` turns the code anticlockwise by that many degrees. Parts of the code that
    fall outside the frame are cut off, as a camera would.
    """
    _check_size(width, height)
    tile = code_tile(
        text,
        module_px=module_px,
        quiet_zone=quiet_zone,
        background=background,
        foreground=foreground,
        error=error,
    )
    if angle % 360:
        image = Image.fromarray(tile).rotate(
            angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=background
        )
        tile = np.asarray(image, dtype=np.uint8)
    frame = np.full((height, width), background, dtype=np.uint8)
    _paste(frame, tile, center if center is not None else (width / 2, height / 2))
    return frame


def blank_frame(
    width: int = 640,
    height: int = 480,
    level: int = 200,
    noise: float = 0,
    seed: int | None = None,
) -> Frame:
    """A frame with nothing in view: ``level`` grey plus Gaussian noise of std ``noise``."""
    _check_size(width, height)
    _check_level("level", level)
    if noise < 0:
        raise ValueError(f"noise must not be negative, got {noise}")
    if not noise:
        return np.full((height, width), level, dtype=np.uint8)
    rng = np.random.default_rng(seed)
    return _to_frame(rng.normal(level, noise, size=(height, width)))


def _perspective_coefficients(
    source: np.ndarray, target: np.ndarray
) -> tuple[float, float, float, float, float, float, float, float]:
    """PIL's PERSPECTIVE data: the map from each ``target`` corner back to its ``source``."""
    rows = []
    rhs = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    a, b, c, d, e, f, g, h = np.linalg.solve(np.array(rows), np.array(rhs)).tolist()
    return a, b, c, d, e, f, g, h


def degrade(
    frame: Frame,
    *,
    rng: np.random.Generator,
    blur: float = 0.0,
    noise: float = 0.0,
    contrast: float = 1.0,
    glare: float = 0.0,
    perspective: float = 0.0,
) -> Frame:
    """A copy of ``frame`` spoilt the ways a kiosk camera spoils a held-up code.

    Applied in the order light reaches the sensor: ``perspective`` (0..0.5: each corner
    moves up to that fraction of the frame's short side, at random), ``glare`` (0..1: a
    bright spot of that strength at a random place), ``blur`` (Gaussian radius in
    pixels), ``contrast`` (1 keeps it; 0.3 squeezes grey levels to 30% around the mean)
    and ``noise`` (std of Gaussian sensor noise in grey levels).
    """
    if frame.ndim != 2 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be a 2-D uint8 array, got {frame.dtype} {frame.shape}")
    if blur < 0 or noise < 0 or contrast < 0 or not 0 <= glare <= 1:
        raise ValueError("blur, noise and contrast must be >= 0 and glare in 0..1")
    if not 0 <= perspective <= 0.5:
        raise ValueError(f"perspective must be in 0..0.5, got {perspective}")
    height, width = frame.shape
    image = Image.fromarray(frame)
    if perspective:
        corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=float)
        shift = rng.uniform(-perspective, perspective, size=(4, 2)) * min(width, height)
        image = image.transform(
            (width, height),
            Image.Transform.PERSPECTIVE,
            _perspective_coefficients(corners, corners + shift),
            resample=Image.Resampling.BILINEAR,
            fillcolor=int(np.median(frame)),
        )
    values: npt.NDArray[np.floating[Any]] = np.asarray(image, dtype=np.float32)
    if glare:
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        sigma = min(width, height) / 4
        # A round Gaussian spot is the outer product of two 1-D ones: 1,120 exp() calls
        # instead of 307,200 for a 640x480 frame.
        rows = np.exp(-((np.arange(height, dtype=np.float32) - cy) ** 2) / (2 * sigma**2))
        cols = np.exp(-((np.arange(width, dtype=np.float32) - cx) ** 2) / (2 * sigma**2))
        values = values + np.float32(glare * 255) * np.outer(rows, cols)
    if blur:
        # Clip first: Pillow blurs uint8 images, and glare may have pushed values past 255.
        blurred = Image.fromarray(_to_frame(values)).filter(ImageFilter.GaussianBlur(blur))
        values = np.asarray(blurred, dtype=np.float32)
    if contrast != 1:
        mean = float(values.mean())
        values = (values - mean) * contrast + mean
    if noise:
        values = values + np.float32(noise) * rng.standard_normal(values.shape, dtype=np.float32)
    return _to_frame(values)
