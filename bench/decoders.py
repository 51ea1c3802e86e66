"""Decoder benchmark: read rates and decode times of the kiosk's QR readers on generated captures.

    .venv/bin/python -m bench.decoders [--frames N] [--seed S] [--out table.md] [--quick]

Every code frame shows a real, signed label or pass (central.tokens) as the project
prints it, held 15-60 cm in front of a simulated Camera Module 3 that delivers, as
picamera2 does from one request, a 640x480 scanning frame and the full-resolution
1728x1296 frame of the same instant: small, turned, tilted, blurred or smeared by motion,
dim or glaring, partly covered by a finger, with sensor noise. Each sample is three
consecutive frames (30 fps) that differ the way a hand-held code does. Frames with no
code are cheap crops of a pool of textures. Everything but the timings follows from
``--seed``: sample ``i`` is the same whatever ``--frames`` is.
"""

from __future__ import annotations

import argparse
import base64
import gc
import math
import os
import platform
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any, get_args

import numpy as np
import numpy.typing as npt
import segno
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from broker.labels import (
    DEFAULT_FORMAT,
    DPI,
    FORMATS,
    PASS_MODULE_PX,
    QUIET_MODULES,
    LabelCard,
    LabelFormat,
    label_image,
    make_qr,
)
from central.tokens import KeyRing, TokenSigner
from hardware.decoders import make_decoder
from hardware.errors import DecoderError
from hardware.interfaces import Capture, Decoder, Frame
from hardware.pipeline import ScanPipeline
from hardware.synthetic import blank_frame, code_tile, degrade
from hardware.zxing import BinarizerName, ZxingDecoder

FloatArray = npt.NDArray[np.float64]

WIDTH, HEIGHT = 640, 480
# Camera Module 3 (Sony IMX708): a 16:9 sensor of 4608x2592 px behind a 66 deg horizontal
# field of view. At 30 fps libcamera runs it in its 2x2-binned 2304x1296 mode, and a 4:3
# stream pair (lores 640x480 and main 1728x1296, as hardware.picamera asks for) is cut
# from the middle 1728x1296 of that: 75 % of the sensor's width. Focal length in lores
# px: 320 / (tan(33 deg) x 0.75) = 657, so tilt and distance give a real keystone.
SENSOR_HFOV_DEG = 66.0
CROP_SHARE = 0.75
FOCAL_PX = (WIDTH / 2) / (math.tan(math.radians(SENSOR_HFOV_DEG) / 2) * CROP_SHARE)
FULL_W, FULL_H = 1728, 1296
FULL_SCALE = FULL_W / WIDTH  # 2.7 full-resolution px per scanning-frame px
# Cards are drawn at 12 px a module and warped into the full frame at 2x its size, then
# box-averaged down: each pixel integrates its area as a sensor pixel does, instead of
# point-sampling a sharp edge. The scanning frame is the ISP's area-average of the full one.
SOURCE_PX = 12
SUPERSAMPLE = 2
CONSECUTIVE = 3
TEXTURE_PAD = 64
TEX_W, TEX_H = WIDTH + TEXTURE_PAD, HEIGHT + TEXTURE_PAD
NOISE_FIELD = 1024

# Independent random streams, so changing one count never shifts another corpus.
_CODE, _TEXTURE, _NOCODE, _NONQR, _NOISE, _ABLATE = range(6)

BARS_MEDIAN_MS = 2.0
BARS_SINGLE = 0.97
BARS_TRIPLE = 0.995

# How far from the camera a code is held, cm (uniform).
DISTANCE_CM = (15.0, 60.0)
# The share of samples with a finger over the code.
COVERED = 0.15
# Item labels are drawn by broker.labels as `cs-admin labels` prints them (--label picks
# the format: the tag's modules are 20 px at 300 dpi, 1.69 mm; the old sheet's 8 px,
# 0.68 mm). A pass printed by `cs-admin pass` has broker.labels' PASS_MODULE_PX at 300 dpi;
# a phone shows the pass 30-50 mm wide: 0.9-1.5 mm.
PRINTED_MODULE_MM = PASS_MODULE_PX * 25.4 / DPI
PHONE_MODULE_MM = (0.9, 1.5)
# Where the retry budget stops on this machine: the kiosk's Pi budget over the x86-to-Pi
# factor (docs/benchmarks.md says where the factor comes from).
PI_FRAME_BUDGET_MS = 25.0
PI_RETRY_BUDGET_MS = 15.0
PI_FACTOR = 4.0

EPOCH = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
_ITEM_KINDS = (
    "DRILL",
    "SAW",
    "SANDER",
    "RAKE",
    "SHEARS",
    "LADDER",
    "TENT",
    "KAYAK",
    "PROJECTOR",
    "MIXER",
    "BOOK",
    "GAME",
    "TILE-CUTTER",
    "PRESSURE-WASHER",
)
_TEXT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,:-/()%#"

DISTRIBUTION = [
    ("token", "50 % item labels (`CS1.L…`, QR version 3), 50 % member passes (`CS1.P…`, v4)"),
    ("error correction", "what `segno.make_qr(code, error='m')` picks, as provisioning prints"),
    (
        "card",
        "labels: the printed cell (quiet zone 4, name and id under the code); 30 % of "
        "passes on paper (quiet zone 4); 70 % of passes on a phone",
    ),
    (
        "module",
        "labels as `cs-admin labels` prints them (--label: tag 20 px at 300 dpi = 1.69 mm, "
        f"sheet 8 px = 0.68 mm); passes on paper {PRINTED_MODULE_MM:.2f} mm "
        f"({PASS_MODULE_PX} px at 300 dpi); phone "
        f"U{PHONE_MODULE_MM} mm",
    ),
    ("distance", "uniform over --distance-cm (default 15-60 cm); module px follows from it"),
    (
        "camera",
        "Camera Module 3, 66° HFOV sensor, 4:3 crop: lores 640x480 f=657 px, full 1728x1296 (2.7x)",
    ),
    ("phone", "quiet zone 2-4 modules, app text above/below, dark bezel 1-3 modules"),
    (
        "ink / paper level",
        "paper: ink U[10, 60], paper U[150, 245]; phone: black U[5, 30], "
        "screen brightness U[70, 245] (grey levels)",
    ),
    ("rotation", "U[0, 360)°"),
    ("perspective", "card tilted U[0, 45]° about a random in-plane axis"),
    ("position", "uniform over places where code + quiet zone is wholly in the frame"),
    ("background", "a random scene texture (gradients, clutter, text, stripes, grids)"),
    ("focus blur", "Gaussian sigma U[0.5, 1.5] full-resolution px"),
    ("motion blur", "25 %: a straight smear of U[2, 10] full-resolution px, random direction"),
    (
        "light",
        "25 % dim: contrast U[30, 60] %, noise sigma U[6, 12]; else 40 % of samples "
        "contrast U[50, 90] %, noise sigma U[2, 6] (full-resolution grey levels)",
    ),
    (
        "glare",
        "30 %: a spot of strength U[0.15, 0.6]·255, sigma U[0.25, 0.6]·code side, on the code",
    ),
    (
        "covered",
        "--covered (default 15 %): a finger (grey U[60, 160]) over U[5, 15] % of the code's "
        "side, from a random edge",
    ),
    (
        "consecutive frames",
        "random walk per frame: ±3 px, ±1.5° turn, ±2° tilt, ±3 % size, ±0.15 px blur, "
        "±1 px smear, ±0.03 contrast, ±0.05 glare",
    ),
]


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _to_frame(values: npt.NDArray[Any]) -> Frame:
    return np.ascontiguousarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


# --- tokens ---------------------------------------------------------------------------


def make_token(signer: TokenSigner, rng: np.random.Generator) -> tuple[str, str]:
    """A real signed code: ("label" | "pass", text), with ids shaped like production's."""
    if rng.random() < 0.5:
        digits = int(rng.choice([2, 4]))
        item_id = f"{rng.choice(_ITEM_KINDS)}-{int(rng.integers(1, 10**digits)):0{digits}d}"
        version = int(rng.choice([1, 1, 1, 1, 2, 2, 3, 7, 12]))
        return "label", signer.label(item_id, version)
    # new_id()'s shape (10 random bytes in base32), but from the seeded generator.
    pass_id = base64.b32encode(rng.bytes(10)).decode().rstrip("=")
    member_id = f"M-{int(rng.integers(1000, 100_000))}"
    expires_at = EPOCH + timedelta(seconds=_uniform(rng, 300, 86_400))
    return "pass", signer.member_pass(pass_id, member_id, expires_at)


# --- the card a member holds up ---------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """A label or phone screen drawn at SOURCE_PX a module, with its opacity mask."""

    style: str
    image: Image.Image
    mask: Image.Image
    code_center: tuple[float, float]  # source pixels
    modules: int  # symbol side, without quiet zone
    quiet: int
    module_mm: float = 0.0  # a printed label's module as printed; 0: set by the sample


def make_card(
    text: str, style: str, rng: np.random.Generator, label: LabelFormat | None = None
) -> Card:
    """A printed label/pass (``paper``) or a pass on a phone (``phone``) showing ``text``.

    With ``label``, ``text`` is an item label drawn as broker.labels prints it in that
    format. The same random draws are made either way, so the rest of a sample (pose,
    light, finger) is the same whatever the label format is.
    """
    # Provisioning saves codes with segno's default boost_error, so print as it does.
    error = segno.make_qr(text, error="m").error or "M"
    if style == "phone":
        # A screen's black is darker than ink; its white is as bright as the member set it.
        ink, light = int(rng.integers(5, 31)), int(rng.integers(70, 246))
    else:
        ink, light = int(rng.integers(10, 61)), int(rng.integers(150, 246))
    quiet = int(rng.integers(2, 5)) if style == "phone" else 4
    tile = code_tile(
        text, module_px=SOURCE_PX, quiet_zone=quiet, background=light, foreground=ink, error=error
    )
    modules = tile.shape[0] // SOURCE_PX - 2 * quiet

    def px(low: float, high: float) -> int:
        return round(_uniform(rng, low, high) * SOURCE_PX)

    if style == "phone":
        left, right, top, bottom = px(0.3, 1.5), px(0.3, 1.5), px(4, 12), px(3, 10)
        bezel, bezel_level = px(1, 3), int(rng.integers(15, 46))
    else:
        left, right, top, bottom = px(0.5, 2.5), px(0.5, 2.5), px(0.5, 2.5), px(0.5, 2.5)
        bezel, bezel_level = 0, light
    if label is not None:
        return _printed_label(text, label, ink, light)
    th, tw = tile.shape
    height = bezel + top + th + bottom + bezel
    width = bezel + left + tw + right + bezel
    card = np.full((height, width), bezel_level, dtype=np.uint8)
    card[bezel : height - bezel, bezel : width - bezel] = light
    y0, x0 = bezel + top, bezel + left
    card[y0 : y0 + th, x0 : x0 + tw] = tile
    if style == "phone":
        # The app's text lines above and below the code, never inside its quiet zone.
        for start, stop in ((bezel + SOURCE_PX, y0 - SOURCE_PX), (y0 + th + SOURCE_PX, height)):
            y = start
            while True:
                line = px(0.8, 1.6)
                if y + line > min(stop, height - bezel - SOURCE_PX // 2):
                    break
                length = px(3, max(3.5, (width - 2 * bezel) / SOURCE_PX - 2))
                card[y : y + line, x0 : x0 + length] = int(rng.integers(20, 120))
                y += line + px(0.8, 1.6)
    return Card(
        style=style,
        image=Image.fromarray(card),
        mask=Image.new("L", (width, height), 255),
        code_center=(x0 + tw / 2, y0 + th / 2),
        modules=modules,
        quiet=quiet,
    )


def _printed_label(text: str, fmt: LabelFormat, ink: int, light: int) -> Card:
    """The label cell ``cs-admin labels`` prints for ``text``, at SOURCE_PX a module."""
    item_id = text.split(".")[3]
    name = item_id.rsplit("-", 1)[0].replace("-", " ").capitalize()
    cell, qr = label_image(LabelCard(item_id, name, text), fmt)
    # Cut so the symbol starts on a module boundary: module edges then land on whole
    # pixels once scaled to SOURCE_PX, as on the printed page.
    x0, y0 = qr.left % qr.module_px, qr.top % qr.module_px
    cell = cell.crop((x0, y0, cell.width, cell.height))
    scale = SOURCE_PX / qr.module_px
    size = (round(cell.width * scale), round(cell.height * scale))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
    values = np.asarray(cell.resize(size, resample), dtype=np.float32) / 255
    image = _to_frame(ink + values * (light - ink))
    modules = int(make_qr(text).symbol_size(scale=1, border=0)[0])
    side = (modules + 2 * QUIET_MODULES) * SOURCE_PX
    left, top = (qr.left - x0) * scale, (qr.top - y0) * scale
    return Card(
        style="paper",
        image=Image.fromarray(image),
        mask=Image.new("L", size, 255),
        code_center=(left + side / 2, top + side / 2),
        modules=modules,
        quiet=QUIET_MODULES,
        module_mm=qr.module_px * 25.4 / DPI,
    )


def cover(card: Card, rng: np.random.Generator) -> tuple[Card, float]:
    """``card`` with a fingertip over one edge of its code, and how far in it reaches.

    The reach is a share of the code's side (without quiet zone). The finger is part of
    the card, so it moves with it from frame to frame, as a finger holding a card does.
    """
    reach = _uniform(rng, 0.05, 0.15)
    side = card.modules * SOURCE_PX
    cx, cy = card.code_center
    width = _uniform(rng, 0.25, 0.45) * side
    depth = side * 0.6  # the rest of the finger, outside the code
    edge = int(rng.integers(4))
    along = _uniform(rng, -0.3, 0.3) * side
    inner = side / 2 - reach * side  # from the code's centre to the fingertip
    if edge == 0:  # from the left
        box = (cx - inner - depth, cy + along - width / 2, cx - inner, cy + along + width / 2)
    elif edge == 1:  # from the right
        box = (cx + inner, cy + along - width / 2, cx + inner + depth, cy + along + width / 2)
    elif edge == 2:  # from the top
        box = (cx + along - width / 2, cy - inner - depth, cx + along + width / 2, cy - inner)
    else:  # from the bottom
        box = (cx + along - width / 2, cy + inner, cx + along + width / 2, cy + inner + depth)
    image = card.image.copy()
    ImageDraw.Draw(image).rounded_rectangle(box, radius=width / 2, fill=int(rng.integers(60, 161)))
    return replace(card, image=image), reach


# --- how it is held: pose and photometry of one frame -------------------------------------


@dataclass(frozen=True)
class View:
    """Everything that may change from one camera frame to the next."""

    cx: float  # code centre in the frame, px
    cy: float
    module_px: float  # module size at the code's centre, px
    roll: float  # in-plane turn, degrees
    tilt: float  # out-of-plane tilt, degrees
    tilt_dir: float  # axis of the tilt, degrees
    blur: float  # Gaussian sigma, full-resolution px
    motion: float  # length of the motion smear, full-resolution px
    motion_dir: float  # its direction, degrees
    contrast: float  # 1 keeps the grey levels
    glare: float  # 0..1 of full scale
    glare_dx: float  # spot offset from the code centre, in code sides
    glare_dy: float
    glare_size: float  # spot sigma, in code sides
    noise: float  # sensor noise sigma in the full frame, grey levels
    distance: float  # from the camera, cm


def _rotation(view: View) -> FloatArray:
    roll = math.radians(view.roll)
    c, s = math.cos(roll), math.sin(roll)
    spin = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    theta, phi = math.radians(view.tilt), math.radians(view.tilt_dir)
    axis = np.array([math.cos(phi), math.sin(phi), 0.0])
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    tilt = np.eye(3) + math.sin(theta) * cross + (1 - math.cos(theta)) * (cross @ cross)
    result: FloatArray = tilt @ spin
    return result


def homography(view: View, card: Card) -> FloatArray:
    """The map from the card image's pixels to frame pixels (pinhole camera)."""
    depth = FOCAL_PX / view.module_px  # in modules, so one module spans module_px px
    shift = np.array(
        [(view.cx - WIDTH / 2) * depth / FOCAL_PX, (view.cy - HEIGHT / 2) * depth / FOCAL_PX, depth]
    )
    rotation = _rotation(view)
    extrinsic = np.column_stack([rotation[:, 0], rotation[:, 1], shift])
    camera = np.array([[FOCAL_PX, 0.0, WIDTH / 2], [0.0, FOCAL_PX, HEIGHT / 2], [0.0, 0.0, 1.0]])
    cx, cy = card.code_center
    source = np.array(
        [[1 / SOURCE_PX, 0.0, -cx / SOURCE_PX], [0.0, 1 / SOURCE_PX, -cy / SOURCE_PX], [0, 0, 1]]
    )
    result: FloatArray = camera @ extrinsic @ source
    return result


def _project(matrix: FloatArray, points: FloatArray) -> FloatArray:
    ones = np.ones((len(points), 1))
    mapped = np.hstack([points, ones]) @ matrix.T
    result: FloatArray = mapped[:, :2] / mapped[:, 2:3]
    return result


def _code_corners(card: Card) -> FloatArray:
    half = (card.modules / 2 + card.quiet) * SOURCE_PX
    cx, cy = card.code_center
    return np.array(
        [
            [cx - half, cy - half],
            [cx + half, cy - half],
            [cx + half, cy + half],
            [cx - half, cy + half],
        ]
    )


def _centre_range(view: View, card: Card) -> tuple[float, float, float, float]:
    """Where the code's centre may go so that code and quiet zone stay in the frame."""
    centred = replace(view, cx=WIDTH / 2, cy=HEIGHT / 2)
    corners = _project(homography(centred, card), _code_corners(card))
    dx, dy = corners[:, 0] - WIDTH / 2, corners[:, 1] - HEIGHT / 2
    x_lo, x_hi = 1 - float(dx.min()), WIDTH - 1 - float(dx.max())
    y_lo, y_hi = 1 - float(dy.min()), HEIGHT - 1 - float(dy.max())
    if x_lo > x_hi:
        x_lo = x_hi = WIDTH / 2
    if y_lo > y_hi:
        y_lo = y_hi = HEIGHT / 2
    return x_lo, x_hi, y_lo, y_hi


def sample_view(
    card: Card,
    rng: np.random.Generator,
    module_mm: float,
    distance_cm: tuple[float, float] = DISTANCE_CM,
) -> View:
    """The first frame of a sample, drawn from the corpus distribution (DISTRIBUTION)."""
    glare = rng.random() < 0.3
    distance = _uniform(rng, *distance_cm)
    dim = rng.random() < 0.25
    if dim:
        contrast, noise = _uniform(rng, 0.3, 0.6), _uniform(rng, 6, 12)
    else:
        contrast = _uniform(rng, 0.5, 0.9) if rng.random() < 0.4 else 1.0
        noise = _uniform(rng, 2, 6)
    moving = rng.random() < 0.25
    view = View(
        cx=WIDTH / 2,
        cy=HEIGHT / 2,
        module_px=FOCAL_PX * module_mm / (distance * 10),
        roll=_uniform(rng, 0, 360),
        tilt=_uniform(rng, 0, 45),
        tilt_dir=_uniform(rng, 0, 360),
        blur=_uniform(rng, 0.5, 1.5),
        motion=_uniform(rng, 2, 10) if moving else 0.0,
        motion_dir=_uniform(rng, 0, 180),
        contrast=contrast,
        glare=_uniform(rng, 0.15, 0.6) if glare else 0.0,
        glare_dx=_uniform(rng, -0.5, 0.5),
        glare_dy=_uniform(rng, -0.5, 0.5),
        glare_size=_uniform(rng, 0.25, 0.6),
        noise=noise,
        distance=distance,
    )
    x_lo, x_hi, y_lo, y_hi = _centre_range(view, card)
    return replace(view, cx=_uniform(rng, x_lo, x_hi), cy=_uniform(rng, y_lo, y_hi))


def next_view(view: View, card: Card, rng: np.random.Generator) -> View:
    """The view one frame (33 ms) later: a hand-held code drifts a little."""
    moved = replace(
        view,
        cx=view.cx + _uniform(rng, -3, 3),
        cy=view.cy + _uniform(rng, -3, 3),
        module_px=view.module_px * _uniform(rng, 0.97, 1.03),
        roll=view.roll + _uniform(rng, -1.5, 1.5),
        tilt=min(max(view.tilt + _uniform(rng, -2, 2), 0.0), 50.0),
        tilt_dir=view.tilt_dir + _uniform(rng, -5, 5),
        blur=max(view.blur + _uniform(rng, -0.15, 0.15), 0.5),
        motion=max(view.motion + _uniform(rng, -1, 1), 0.0) if view.motion else 0.0,
        motion_dir=view.motion_dir + _uniform(rng, -10, 10),
        contrast=(
            min(max(view.contrast + _uniform(rng, -0.03, 0.03), 0.3), 1.0)
            if view.contrast < 1
            else 1.0
        ),
        glare=min(max(view.glare + _uniform(rng, -0.05, 0.05), 0.0), 1.0) if view.glare else 0.0,
        glare_dx=view.glare_dx + _uniform(rng, -0.05, 0.05),
        glare_dy=view.glare_dy + _uniform(rng, -0.05, 0.05),
    )
    return _keep_in_frame(moved, card)


def _keep_in_frame(view: View, card: Card) -> View:
    x_lo, x_hi, y_lo, y_hi = _centre_range(view, card)
    return replace(view, cx=min(max(view.cx, x_lo), x_hi), cy=min(max(view.cy, y_lo), y_hi))


@dataclass(frozen=True)
class Sample:
    """One code held up: what is shown, in front of what, and its first frame's view."""

    kind: str  # "label" or "pass"
    style: str  # "paper" or "phone"
    text: str
    card: Card
    background: Frame
    view: View
    covered: float  # how far a finger reaches into the code, share of its side (0: none)

    @property
    def card_name(self) -> str:
        return f"{self.kind} on {self.style}"


def make_sample(
    signer: TokenSigner,
    scenery: Sequence[Texture],
    seed: int,
    index: int,
    distance_cm: tuple[float, float] = DISTANCE_CM,
    covered: float = COVERED,
    label: LabelFormat = DEFAULT_FORMAT,
) -> tuple[Sample, np.random.Generator]:
    """Sample ``index`` of the code corpus, and the generator its later frames draw on.

    ``covered`` is the share of samples with a finger over the code. The draw is made
    whatever it is, so sample ``i`` differs only in its finger between runs.
    """
    rng = _rng(seed, _CODE, index)
    kind, text = make_token(signer, rng)
    style = "phone" if kind == "pass" and rng.random() < 0.7 else "paper"
    card = make_card(text, style, rng, label if kind == "label" else None)
    if style == "phone":
        module_mm = _uniform(rng, *PHONE_MODULE_MM)
    else:
        module_mm = card.module_mm or PRINTED_MODULE_MM
    reach = 0.0
    if rng.random() < covered:
        card, reach = cover(card, rng)
    background = np.array(crop(scenery[int(rng.integers(len(scenery)))], rng))
    view = sample_view(card, rng, module_mm, distance_cm)
    return Sample(kind, style, text, card, background, view, reach), rng


def features(sample: Sample, view: View) -> dict[str, float | str]:
    """What the breakdown table bins a frame by."""
    return {
        "card": sample.card_name,
        "distance": view.distance,
        "module_px": view.module_px,
        "tilt": view.tilt,
        "blur": view.blur,
        "motion": view.motion,
        "contrast": view.contrast,
        "glare": view.glare,
        "noise": view.noise,
        "covered": sample.covered,
    }


_TO_FULL = np.diag([FULL_SCALE, FULL_SCALE, 1.0])


def full_noise(seed: int) -> npt.NDArray[np.float32]:
    """A field of unit Gaussian noise a little larger than the full frame, cut at random."""
    shape = (FULL_H + TEXTURE_PAD * 2, FULL_W + TEXTURE_PAD * 2)
    return _rng(seed, _NOISE, 1).standard_normal(shape, np.float32)


def _smear(values: npt.NDArray[np.float32], length: float, degrees: float) -> None:
    """Average ``values`` in place along a straight line: a code moving during exposure."""
    taps = max(2, round(length))
    dx, dy = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    source = values.copy()
    total = np.zeros_like(values)
    for tap in range(taps):
        t = tap / (taps - 1) - 0.5
        sx, sy = round(t * length * dx), round(t * length * dy)
        # np.roll wraps round the edge; the region has a margin wider than any smear.
        total += np.roll(source, (sy, sx), axis=(0, 1))
    values[...] = total / np.float32(taps)


def render_capture(
    card: Card,
    background: Frame,
    view: View,
    rng: np.random.Generator,
    noise: npt.NDArray[np.float32],
) -> Capture:
    """One camera request: ``card`` seen as ``view`` in front of ``background``.

    The full-resolution frame is rendered; the scanning frame is its area-average, as the
    ISP scales both streams from the same sensor image.
    """
    scene = Image.fromarray(background).resize((FULL_W, FULL_H), Image.Resampling.BILINEAR)
    full = np.array(scene, dtype=np.uint8)
    matrix = _TO_FULL @ homography(view, card)
    width, height = card.image.size
    outline = _project(matrix, np.array([[0, 0], [width, 0], [width, height], [0, height]], float))
    side = (card.modules + 2 * card.quiet) * view.module_px * FULL_SCALE
    margin = math.ceil(4 * view.blur + view.motion + 4)
    if view.glare:
        margin = max(margin, math.ceil(2 * view.glare_size * side))
    x0 = max(math.floor(outline[:, 0].min()) - margin, 0)
    y0 = max(math.floor(outline[:, 1].min()) - margin, 0)
    x1 = min(math.ceil(outline[:, 0].max()) + margin, FULL_W)
    y1 = min(math.ceil(outline[:, 1].max()) + margin, FULL_H)
    if x0 < x1 and y0 < y1:
        values = full[y0:y1, x0:x1].astype(np.float32)
        to_patch = np.array(
            [[SUPERSAMPLE, 0, -SUPERSAMPLE * x0], [0, SUPERSAMPLE, -SUPERSAMPLE * y0], [0, 0, 1]],
            dtype=float,
        )
        inverse = np.linalg.inv(to_patch @ matrix)
        inverse /= inverse[2, 2]
        a, b, c, d, e, f, g, h = (float(v) for v in inverse.ravel()[:8])
        size = ((x1 - x0) * SUPERSAMPLE, (y1 - y0) * SUPERSAMPLE)

        def warp(image: Image.Image) -> npt.NDArray[np.float32]:
            # Filled with 0 outside the card, so the warped card comes out premultiplied
            # by the warped mask and the two composite exactly, edges included.
            warped = image.transform(
                size,
                Image.Transform.PERSPECTIVE,
                (a, b, c, d, e, f, g, h),
                resample=Image.Resampling.BILINEAR,
                fillcolor=0,
            ).reduce(SUPERSAMPLE)
            return np.asarray(warped, dtype=np.float32)

        alpha = warp(card.mask) / np.float32(255)
        values = values * (1 - alpha) + warp(card.image)
        if view.glare:
            gx = (view.cx + view.glare_dx * side / FULL_SCALE) * FULL_SCALE - x0
            gy = (view.cy + view.glare_dy * side / FULL_SCALE) * FULL_SCALE - y0
            sigma = view.glare_size * side
            rows = np.exp(-((np.arange(y1 - y0, dtype=np.float32) - gy) ** 2) / (2 * sigma**2))
            cols = np.exp(-((np.arange(x1 - x0, dtype=np.float32) - gx) ** 2) / (2 * sigma**2))
            values += np.float32(view.glare * 255) * np.outer(rows, cols)
        # Focus blur and motion act on the light before the sensor: the region only, as
        # the background is out of focus already.
        blurred = Image.fromarray(_to_frame(values)).filter(ImageFilter.GaussianBlur(view.blur))
        values = np.asarray(blurred, dtype=np.float32).copy()
        if view.motion:
            _smear(values, view.motion, view.motion_dir)
        full[y0:y1, x0:x1] = _to_frame(values)
    if view.contrast != 1:
        # Dim light: the whole scene's grey levels squeezed round the code's mean.
        mean = float(full[y0:y1, x0:x1].mean()) if x0 < x1 and y0 < y1 else float(full.mean())
        levels = (np.arange(256, dtype=np.float32) - mean) * view.contrast + mean
        full = _to_frame(levels)[full]
    ny = int(rng.integers(0, noise.shape[0] - FULL_H))
    nx = int(rng.integers(0, noise.shape[1] - FULL_W))
    grain = noise[ny : ny + FULL_H, nx : nx + FULL_W] * np.float32(view.noise)
    full = _to_frame(full + grain)
    lores = Image.fromarray(full).resize((WIDTH, HEIGHT), Image.Resampling.BOX)
    return Capture(np.asarray(lores, dtype=np.uint8), full)


def upscaled(frame: Frame) -> Capture:
    """A capture whose full frame is ``frame`` enlarged: for scenes with no code, where
    the full frame's own detail matters only if the pipeline looks there at all."""
    full = Image.fromarray(frame).resize((FULL_W, FULL_H), Image.Resampling.BILINEAR)
    return Capture(frame, np.asarray(full, dtype=np.uint8))


# --- scenes with no code ---------------------------------------------------------------


def _grid(rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Pixel coordinates turned by a random angle."""
    yy, xx = np.mgrid[0:TEX_H, 0:TEX_W].astype(float)
    angle = _uniform(rng, 0, math.pi)
    return xx * math.cos(angle) + yy * math.sin(angle), yy * math.cos(angle) - xx * math.sin(angle)


def _levels(pattern: FloatArray, rng: np.random.Generator) -> FloatArray:
    low, high = sorted((_uniform(rng, 10, 245), _uniform(rng, 10, 245)))
    result: FloatArray = low + (high - low) * pattern
    return result


def _tex_gradient(rng: np.random.Generator) -> Frame:
    u, v = _grid(rng)
    ramp = (u - u.min()) / (u.max() - u.min())
    radius = ((u - u.mean()) ** 2 + (v - v.mean()) ** 2) / (u.max() - u.min()) ** 2
    return _to_frame(_levels(ramp, rng) * (1 - _uniform(rng, 0, 1.5) * radius))


def _tex_blobs(rng: np.random.Generator) -> Frame:
    cells = int(rng.integers(4, 48))
    coarse = rng.random((cells, max(2, cells * TEX_W // TEX_H))).astype(np.float32)
    smooth = Image.fromarray(coarse, mode="F").resize((TEX_W, TEX_H), Image.Resampling.BICUBIC)
    return _to_frame(_levels(np.clip(np.asarray(smooth, dtype=float), 0, 1), rng))


def _tex_shapes(rng: np.random.Generator) -> Frame:
    image = Image.new("L", (TEX_W, TEX_H), int(rng.integers(30, 230)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(15, 90))):
        x, y = int(rng.integers(-50, TEX_W)), int(rng.integers(-50, TEX_H))
        w, h = int(rng.integers(3, 220)), int(rng.integers(3, 220))
        box = (x, y, x + w, y + h)
        fill = int(rng.integers(0, 256))
        outline = int(rng.integers(0, 256)) if rng.random() < 0.5 else None
        shape = int(rng.integers(0, 4))
        if shape == 0:
            draw.rectangle(box, fill=fill, outline=outline, width=int(rng.integers(1, 4)))
        elif shape == 1:
            draw.ellipse(box, fill=fill, outline=outline)
        elif shape == 2:
            draw.line(box, fill=fill, width=int(rng.integers(1, 8)))
        else:
            points = [(int(rng.integers(x, x + w)), int(rng.integers(y, y + h))) for _ in range(5)]
            draw.polygon(points, fill=fill, outline=outline)
    return np.asarray(image.filter(ImageFilter.GaussianBlur(_uniform(rng, 0, 1.5))), np.uint8)


def _tex_text(rng: np.random.Generator) -> Frame:
    paper = int(rng.integers(120, 245))
    image = Image.new("L", (TEX_W, TEX_H), paper)
    draw = ImageDraw.Draw(image)
    y = int(rng.integers(-10, 20))
    while y < TEX_H:
        size = int(rng.integers(8, 32))
        font = ImageFont.load_default(size=size)
        chars = rng.choice(list(_TEXT_CHARS), size=int(rng.integers(10, 90)))
        ink = int(rng.integers(0, max(1, paper - 60)))
        draw.text((int(rng.integers(-20, 60)), y), "".join(chars), fill=ink, font=font)
        y += size + int(rng.integers(2, 3 * size))
    image = image.rotate(_uniform(rng, -35, 35), Image.Resampling.BILINEAR, fillcolor=paper)
    return np.asarray(image.filter(ImageFilter.GaussianBlur(_uniform(rng, 0, 1.0))), np.uint8)


def _tex_stripes(rng: np.random.Generator) -> Frame:
    """1-D barcode look-alikes and striped cloth: QR-only decoders must ignore them."""
    light = int(rng.integers(120, 245))
    base = np.full((TEX_H, TEX_W), light, dtype=np.uint8)
    image = Image.fromarray(base)
    for _ in range(int(rng.integers(1, 6))):
        unit = int(rng.integers(1, 4))
        widths = rng.integers(1, 5, size=int(rng.integers(20, 80))) * unit
        bars = np.repeat(np.arange(len(widths)) % 2, widths)
        tall = int(rng.integers(30, 250))
        ink = int(rng.integers(0, max(1, light - 50)))
        strip = np.where(np.tile(bars, (tall, 1)) == 1, np.uint8(ink), np.uint8(light))
        turned = Image.fromarray(strip).rotate(
            _uniform(rng, 0, 360), Image.Resampling.BILINEAR, expand=True, fillcolor=light
        )
        image.paste(turned, (int(rng.integers(-100, TEX_W)), int(rng.integers(-100, TEX_H))))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(_uniform(rng, 0.3, 1.0))), np.uint8)


def _tex_tiles(rng: np.random.Generator) -> Frame:
    u, v = _grid(rng)
    period = _uniform(rng, 2.5, 24)
    kind = int(rng.integers(0, 3))
    if kind == 0:
        pattern = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(float)
    elif kind == 1:
        pattern = ((np.abs(u % period) < 1.5) | (np.abs(v % period) < 1.5)).astype(float)
    else:
        pattern = 0.5 + 0.5 * np.sin(2 * math.pi * u / period) * np.sin(2 * math.pi * v / period)
    return _to_frame(_levels(pattern, rng))


def _finder(module_px: int, dark: int, light: int) -> Frame:
    rings = np.full((7, 7), 1, dtype=np.uint8)
    rings[1:6, 1:6] = 0
    rings[2:5, 2:5] = 1
    big = np.repeat(np.repeat(rings, module_px, axis=0), module_px, axis=1)
    return np.where(big == 1, np.uint8(dark), np.uint8(light))


def _tex_qr_like(rng: np.random.Generator) -> Frame:
    """Adversarial: finder patterns and random modules that are not a valid symbol."""
    light = int(rng.integers(150, 245))
    image = Image.new("L", (TEX_W, TEX_H), light)
    for _ in range(int(rng.integers(1, 4))):
        size = 21 + 4 * int(rng.integers(0, 6))
        modules = (rng.random((size, size)) < 0.5).astype(np.uint8)
        for y, x in ((0, 0), (0, size - 7), (size - 7, 0)):
            modules[y : y + 8, x : x + 8] = 0
            block = np.ones((7, 7), dtype=np.uint8)
            block[1:6, 1:6] = 0
            block[2:5, 2:5] = 1
            modules[y : y + 7, x : x + 7] = block
        modules[6, 8:-8] = np.arange(size - 16) % 2 == 0
        modules[8:-8, 6] = np.arange(size - 16) % 2 == 0
        scale = int(rng.integers(2, 6))
        ink = int(rng.integers(0, 60))
        tile = np.pad(modules, 4)
        tile = np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)
        symbol = Image.fromarray(np.where(tile == 1, np.uint8(ink), np.uint8(light))).rotate(
            _uniform(rng, 0, 360), Image.Resampling.BILINEAR, expand=True, fillcolor=light
        )
        image.paste(
            symbol, (int(rng.integers(-40, TEX_W - 80)), int(rng.integers(-40, TEX_H - 80)))
        )
    for _ in range(int(rng.integers(0, 6))):  # stray finder-like squares
        stray = Image.fromarray(_finder(int(rng.integers(2, 6)), int(rng.integers(0, 60)), light))
        image.paste(stray, (int(rng.integers(0, TEX_W - 40)), int(rng.integers(0, TEX_H - 40))))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(_uniform(rng, 0.3, 1.0))), np.uint8)


def _tex_plain(rng: np.random.Generator) -> Frame:
    return blank_frame(
        TEX_W,
        TEX_H,
        level=int(rng.integers(20, 235)),
        noise=_uniform(rng, 0, 6),
        seed=int(rng.integers(2**31)),
    )


TEXTURES: list[tuple[str, float, Callable[[np.random.Generator], Frame]]] = [
    ("gradient", 0.15, _tex_gradient),
    ("clutter", 0.20, _tex_shapes),
    ("text", 0.20, _tex_text),
    ("stripes", 0.10, _tex_stripes),
    ("tiles", 0.10, _tex_tiles),
    ("blobs", 0.10, _tex_blobs),
    ("qr-like", 0.10, _tex_qr_like),
    ("plain", 0.05, _tex_plain),
]
# A QR look-alike next to a real code is not a scene anyone meets; keep it out of
# code-frame backgrounds.
_NOT_BEHIND_CODES = frozenset({"qr-like"})


@dataclass(frozen=True)
class Texture:
    kind: str
    pixels: Frame


def make_textures(seed: int, count: int) -> list[Texture]:
    """``count`` textures of TEX_W x TEX_H, kinds in TEXTURES' proportions."""
    weights = np.array([weight for _, weight, _ in TEXTURES])
    textures = []
    for index in range(count):
        rng = _rng(seed, _TEXTURE, index)
        kind, _, make = TEXTURES[int(rng.choice(len(TEXTURES), p=weights / weights.sum()))]
        textures.append(Texture(kind, make(rng)))
    return textures


def scenery_of(textures: Sequence[Texture]) -> list[Texture]:
    """The textures that may stand behind a code (all but the QR look-alikes)."""
    return [t for t in textures if t.kind not in _NOT_BEHIND_CODES]


def crop(texture: Texture, rng: np.random.Generator) -> Frame:
    """A frame-sized window of ``texture``, maybe mirrored."""
    dy, dx = (int(n) for n in rng.integers(0, TEXTURE_PAD + 1, size=2))
    window = texture.pixels[dy : dy + HEIGHT, dx : dx + WIDTH]
    if rng.random() < 0.5:
        window = window[:, ::-1]
    if rng.random() < 0.5:
        window = window[::-1, :]
    return window


def no_code_frame(
    textures: Sequence[Texture], noise: npt.NDArray[np.float32], rng: np.random.Generator
) -> tuple[str, Frame]:
    """A frame with no code: a texture crop at a random exposure, with fresh-looking noise."""
    texture = textures[int(rng.integers(len(textures)))]
    ny = int(rng.integers(0, NOISE_FIELD - HEIGHT))
    nx = int(rng.integers(0, NOISE_FIELD - WIDTH))
    values = crop(texture, rng).astype(np.float32) * np.float32(_uniform(rng, 0.6, 1.2))
    values += np.float32(_uniform(rng, -30, 30))
    values += np.float32(_uniform(rng, 1, 10)) * noise[ny : ny + HEIGHT, nx : nx + WIDTH]
    return texture.kind, _to_frame(values)


# Other symbologies, each carrying one of our codes where it fits: a QR-only decoder
# must ignore them all.
NON_QR_FORMATS = (
    "DataMatrix",
    "Aztec",
    "PDF417",
    "Code128",
    "Code39",
    "EAN13",
    "ITF",
    "MicroQRCode",
    "RMQRCode",
)


def non_qr_frame(
    textures: Sequence[Texture], signer: TokenSigner, rng: np.random.Generator
) -> tuple[str, Frame, bool]:
    """(format, frame, whether an unrestricted zxing-cpp reads it) for another symbology."""
    import zxingcpp

    fmt = NON_QR_FORMATS[int(rng.integers(len(NON_QR_FORMATS)))]
    _, token = make_token(signer, rng)
    digits = "".join(str(int(d)) for d in rng.integers(0, 10, size=14))
    linear = fmt in {"Code128", "Code39", "ITF", "EAN13"}
    # Linear symbols get short content so that, at 2 px a bar, they fit in the frame.
    content = {
        "EAN13": digits[:12],
        "ITF": digits,
        "MicroQRCode": token[:14],
        "Code39": token[:10],
        "Code128": token[:16],
    }.get(fmt, token)
    symbol = zxingcpp.create_barcode(content, getattr(zxingcpp.BarcodeFormat, fmt))
    tile = np.asarray(symbol.to_image(scale=2 if linear else 3), dtype=np.uint8)
    if tile.shape[0] < 20:  # linear symbols come out one bar high
        tile = np.repeat(tile[:1], int(rng.integers(50, 100)), axis=0)
    # Turned no more than zxing-cpp reads every symbology at, so that a read refused
    # here is the QR-only filter at work and not a symbol nobody could read.
    turned = Image.fromarray(np.where(tile > 127, np.uint8(220), np.uint8(30))).rotate(
        _uniform(rng, -20, 20), Image.Resampling.BILINEAR, expand=True, fillcolor=220
    )
    usable = scenery_of(textures)
    scene = Image.fromarray(np.array(crop(usable[int(rng.integers(len(usable)))], rng)))
    w, h = turned.size
    scene.paste(
        turned,
        (int(rng.integers(0, max(1, WIDTH - w))), int(rng.integers(0, max(1, HEIGHT - h)))),
    )
    frame = degrade(np.asarray(scene, np.uint8), rng=rng, blur=0.5, noise=3)
    readable = bool(zxingcpp.read_barcodes(frame))
    return fmt, frame, readable


# --- decoders under test ------------------------------------------------------------------


def build_decoder(spec: str, budget_s: float = PI_RETRY_BUDGET_MS / PI_FACTOR / 1000) -> Decoder:
    """``pyzbar``, ``zxing-cpp`` (the kiosk's pipeline, its retry budget scaled to this
    machine), ``zxing-cpp:plain`` (one zxing-cpp call on the scanning frame, the kiosk's
    decoder before the pipeline) or a plain variant such as
    ``zxing-cpp:binarizer=global-histogram:try_invert=1``."""
    name, *options = spec.split(":")
    if name == "pyzbar" and not options:
        return make_decoder("pyzbar")
    if name != "zxing-cpp":
        raise ValueError(f"unknown decoder spec {spec!r}")
    if not options:
        return ScanPipeline(budget_s=budget_s)
    if options == ["plain"]:
        return ZxingDecoder()
    flags: dict[str, bool] = {}
    binarizer: BinarizerName = "local-average"
    for option in options:
        key, _, value = option.partition("=")
        if key == "binarizer":
            if value not in get_args(BinarizerName):
                raise ValueError(f"binarizer must be one of {get_args(BinarizerName)}")
            binarizer = value  # type: ignore[assignment]  # checked just above
        elif key in {"try_rotate", "try_downscale", "try_invert"}:
            flags[key] = value.lower() in {"1", "true", "yes", "on"}
        else:
            raise ValueError(f"unknown zxing-cpp option {key!r} in {spec!r}")
    return ZxingDecoder(binarizer=binarizer, **flags)


# Each row puts one degradation at its mildest in the first frame of the first samples,
# everything else as drawn: how many reads that degradation costs.
ABLATIONS: list[tuple[str, Callable[[View], View]]] = [
    ("as drawn", lambda v: v),
    (
        "modules ≥ 3 px (smaller ones enlarged to 3)",
        lambda v: replace(v, module_px=max(v.module_px, 3.0)),
    ),
    ("modules ≥ 4 px", lambda v: replace(v, module_px=max(v.module_px, 4.0))),
    ("no tilt", lambda v: replace(v, tilt=0.0)),
    ("focus blur sigma 0.5 px", lambda v: replace(v, blur=0.5)),
    ("no motion blur", lambda v: replace(v, motion=0.0)),
    ("full contrast", lambda v: replace(v, contrast=1.0)),
    ("no glare", lambda v: replace(v, glare=0.0)),
    ("noise sigma 2", lambda v: replace(v, noise=2.0)),
    (
        "all of the last six (only size and turn as drawn)",
        lambda v: replace(v, tilt=0.0, blur=0.5, motion=0.0, contrast=1.0, glare=0.0, noise=2.0),
    ),
]


@dataclass
class Tally:
    """What one decoder did over the whole run."""

    spec: str
    code_ns: list[int] = field(default_factory=list)
    nocode_ns: list[int] = field(default_factory=list)
    frame_hits: list[bool] = field(default_factory=list)
    sample_hits: list[bool] = field(default_factory=list)
    misreads: int = 0
    errors: int = 0
    false_reads: Counter[str] = field(default_factory=Counter)
    non_qr_reads: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)


def _timed(decoder: Decoder, capture: Capture) -> tuple[list[str] | None, int]:
    start = time.perf_counter_ns()
    try:
        texts: list[str] | None = decoder.scan(capture)
    except DecoderError:
        texts = None
    return texts, time.perf_counter_ns() - start


def _baseline(frame: Frame) -> tuple[int, int]:
    start = time.perf_counter_ns()
    frame.mean()
    middle = time.perf_counter_ns()
    frame.copy()
    return middle - start, time.perf_counter_ns() - middle


@dataclass
class Run:
    """Results of one benchmark run."""

    args: argparse.Namespace
    tallies: list[Tally]
    mean_ns: list[int] = field(default_factory=list)
    copy_ns: list[int] = field(default_factory=list)
    frame_features: list[dict[str, float | str]] = field(default_factory=list)
    sample_features: list[dict[str, float | str]] = field(default_factory=list)
    ablation: dict[str, list[int]] = field(default_factory=dict)
    ablation_samples: int = 0
    nocode_kinds: Counter[str] = field(default_factory=Counter)
    non_qr_formats: Counter[str] = field(default_factory=Counter)
    non_qr_readable: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


def _decode_all(
    run: Run, decoders: Sequence[Decoder], capture: Capture, turn: int
) -> list[tuple[int, list[str] | None]]:
    """Every decoder on ``capture``, in an order rotated by ``turn`` so none always goes
    first (the first reader of a fresh frame pays for the cache misses)."""
    mean_ns, copy_ns = _baseline(capture.frame)
    run.mean_ns.append(mean_ns)
    run.copy_ns.append(copy_ns)
    results: list[tuple[int, list[str] | None]] = [(0, None)] * len(decoders)
    for step in range(len(decoders)):
        index = (turn + step) % len(decoders)
        texts, ns = _timed(decoders[index], capture)
        results[index] = (ns, texts)
    return results


def _progress(label: str, done: int, total: int, started: float) -> None:
    if total >= 10 and done % max(1, total // 10) == 0:
        print(f"  {label}: {done}/{total} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)


@dataclass(frozen=True)
class Stage:
    """What every stage of a run shares."""

    args: argparse.Namespace
    decoders: list[Decoder]
    run: Run
    signer: TokenSigner
    textures: list[Texture]
    scenery: list[Texture]
    started: float
    noise: npt.NDArray[np.float32]


def _sample(stage: Stage, index: int) -> tuple[Sample, np.random.Generator]:
    """Sample ``index`` of the corpus the command line asks for."""
    args = stage.args
    return make_sample(
        stage.signer,
        stage.scenery,
        args.seed,
        index,
        args.distance_cm,
        args.covered,
        FORMATS[args.label],
    )


def _code_stage(stage: Stage) -> None:
    args, run, decoders = stage.args, stage.run, stage.decoders
    turn = 0
    for index in range(args.frames):
        sample, rng = _sample(stage, index)
        view = sample.view
        run.sample_features.append(features(sample, view))
        hits = [False] * len(decoders)
        for step in range(CONSECUTIVE):
            if step:
                view = next_view(view, sample.card, rng)
            capture = render_capture(sample.card, sample.background, view, rng, stage.noise)
            run.frame_features.append(features(sample, view))
            for number, (ns, found) in enumerate(_decode_all(run, decoders, capture, turn)):
                tally = run.tallies[number]
                tally.code_ns.append(ns)
                if found is None:
                    tally.errors += 1
                texts = found or []
                hit = sample.text in texts
                tally.frame_hits.append(hit)
                hits[number] = hits[number] or hit
                tally.misreads += sum(text != sample.text for text in texts)
            turn += 1
        for number, hit in enumerate(hits):
            run.tallies[number].sample_hits.append(hit)
        _progress("code samples", index + 1, args.frames, stage.started)


def _no_code_stage(stage: Stage) -> None:
    args, run = stage.args, stage.run
    noise = _rng(args.seed, _NOISE, 0).standard_normal((NOISE_FIELD, NOISE_FIELD), np.float32)
    for index in range(args.no_code):
        kind, frame = no_code_frame(stage.textures, noise, _rng(args.seed, _NOCODE, index))
        run.nocode_kinds[kind] += 1
        capture = upscaled(frame)
        for number, (ns, texts) in enumerate(_decode_all(run, stage.decoders, capture, index)):
            tally = run.tallies[number]
            tally.nocode_ns.append(ns)
            if texts is None:
                tally.errors += 1
            elif texts:
                tally.false_reads[kind] += len(texts)
        _progress("no-code frames", index + 1, args.no_code, stage.started)


def _non_qr_stage(stage: Stage) -> None:
    args, run = stage.args, stage.run
    for index in range(args.non_qr):
        rng = _rng(args.seed, _NONQR, index)
        fmt, frame, readable = non_qr_frame(stage.scenery, stage.signer, rng)
        run.non_qr_formats[fmt] += 1
        run.non_qr_readable[fmt] += readable
        capture = upscaled(frame)
        for number, decoder in enumerate(stage.decoders):
            texts = decoder.scan(capture)
            if texts:
                run.tallies[number].non_qr_reads[fmt] += len(texts)


def _ablation_stage(stage: Stage) -> None:
    args, run = stage.args, stage.run
    run.ablation_samples = min(args.ablation, args.frames)
    run.ablation = {name: [0] * len(stage.decoders) for name, _ in ABLATIONS}
    for index in range(run.ablation_samples):
        sample, _ = _sample(stage, index)
        for name, change in ABLATIONS:
            view = _keep_in_frame(change(sample.view), sample.card)
            # The same noise for every variant of a sample: only the named change differs.
            rng = _rng(args.seed, _ABLATE, index)
            capture = render_capture(sample.card, sample.background, view, rng, stage.noise)
            for number, decoder in enumerate(stage.decoders):
                run.ablation[name][number] += sample.text in decoder.scan(capture)
        _progress("ablation samples", index + 1, run.ablation_samples, stage.started)


def run_benchmark(args: argparse.Namespace) -> Run:
    """Generate the corpora and time every decoder on every frame."""
    specs: list[str] = args.decoders
    run = Run(args=args, tallies=[Tally(spec) for spec in specs])
    run.load_before = os.getloadavg()
    started = time.perf_counter()
    textures = make_textures(args.seed, args.textures)
    stage = Stage(
        args=args,
        decoders=[build_decoder(spec, args.budget_ms / 1000) for spec in specs],
        run=run,
        signer=TokenSigner(KeyRing({"K1": b"k" * 32}, "K1")),
        textures=textures,
        scenery=scenery_of(textures),
        started=started,
        noise=full_noise(args.seed),
    )
    print(f"textures ready ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    for step in (_code_stage, _no_code_stage, _non_qr_stage, _ablation_stage):
        gc.collect()
        step(stage)
        if step is _code_stage:
            # Which attempt of the pipeline read the code frames (the later stages'
            # reads would mix in no-code frames and ablation re-renders).
            for tally, decoder in zip(run.tallies, stage.decoders, strict=True):
                if isinstance(decoder, ScanPipeline):
                    tally.attempts.update(decoder.reads)
    run.seconds = time.perf_counter() - started
    run.load_after = os.getloadavg()
    return run


# --- report ---------------------------------------------------------------------------


def wilson(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion."""
    if not total:
        return 0.0, 1.0
    p = hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def _pct(values: Sequence[int]) -> tuple[float, float, float]:
    if not values:
        return math.nan, math.nan, math.nan
    p50, p95, p99 = np.percentile(np.asarray(values, dtype=float) / 1e6, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def _rate(hits: Sequence[bool]) -> str:
    n = len(hits)
    k = sum(hits)
    if not n:
        return "-"
    lo, hi = wilson(k, n)
    return f"{100 * k / n:.2f} % ({100 * lo:.1f}-{100 * hi:.1f})"


def _ms(values: Sequence[int]) -> str:
    if not values:
        return "-"
    p50, p95, p99 = _pct(values)
    return f"{p50:.2f} / {p95:.2f} / {p99:.2f}"


def _ratio(value: float, reference: float, unit: str = "") -> str:
    if math.isnan(value) or math.isnan(reference):
        return "-"
    return f"{value / reference:.{1 if unit else 2}f}{unit}"


def _versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for package in ("zxing-cpp", "pyzbar", "numpy", "pillow", "segno"):
        try:
            parts.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{package} ?")
    return ", ".join(parts)


def results_table(run: Run) -> list[str]:
    """The main table: one row per decoder and two for the baselines."""
    mean_p50 = _pct(run.mean_ns)[0]
    reference = _reference(run)
    ref_code = _pct(reference.code_ns)[0] if reference else math.nan
    ref_nocode = _pct(reference.nocode_ns)[0] if reference else math.nan
    ref_name = f"`{reference.spec}`" if reference else "-"
    lines = [
        "| decoder | 1-frame read (95 % CI) | within 3 frames (95 % CI) | misreads "
        "| false reads / no-code frames | other symbologies read "
        "| ms/frame with code p50 / p95 / p99 | ms/frame no code p50 / p95 / p99 "
        f"| p50 ÷ baseline (code, no code) | p50 ÷ {ref_name} (code, no code) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tally in run.tallies:
        code_p50, nocode_p50 = _pct(tally.code_ns)[0], _pct(tally.nocode_ns)[0]
        false_reads = sum(tally.false_reads.values())
        lines.append(
            f"| `{tally.spec}` | {_rate(tally.frame_hits)} | {_rate(tally.sample_hits)} "
            f"| {tally.misreads} | {false_reads} / {len(tally.nocode_ns)} "
            f"| {sum(tally.non_qr_reads.values())} / {run.args.non_qr} "
            f"| {_ms(tally.code_ns)} | {_ms(tally.nocode_ns)} "
            f"| {_ratio(code_p50, mean_p50, 'x')}, {_ratio(nocode_p50, mean_p50, 'x')} "
            f"| {_ratio(code_p50, ref_code)}, {_ratio(nocode_p50, ref_nocode)} |"
        )
    lines.append(
        f"| baseline `frame.mean()` | | | | | | {_ms(run.mean_ns)} (all frames) | | 1x | |"
    )
    lines.append(f"| baseline `frame.copy()` | | | | | | {_ms(run.copy_ns)} (all frames) | | | |")
    return lines


def _reference(run: Run) -> Tally | None:
    """The decoder others are compared with: the kiosk's old one if it ran, else pyzbar."""
    for spec in ("zxing-cpp:plain", "pyzbar"):
        found = next((t for t in run.tallies if t.spec == spec), None)
        if found:
            return found
    return None


def bars_table(run: Run) -> list[str]:
    """Each decoder against the product brief's decode bars."""
    budget = PI_FRAME_BUDGET_MS / PI_FACTOR
    lines = [
        "| decoder | median ≤ 2 ms (code / no code) "
        f"| p95 ≤ {budget:.2f} ms (all frames) | ≥ 97 % from 1 frame "
        "| ≥ 99.5 % within 3 frames | 0 false reads |",
        "|---|---|---|---|---|---|",
    ]

    def mark(ok: bool) -> str:
        return "✅" if ok else "❌"

    for tally in run.tallies:
        code_p50, nocode_p50 = _pct(tally.code_ns)[0], _pct(tally.nocode_ns)[0]
        single = sum(tally.frame_hits) / max(1, len(tally.frame_hits))
        triple = sum(tally.sample_hits) / max(1, len(tally.sample_hits))
        false_reads = sum(tally.false_reads.values())
        medians = [p for p in (code_p50, nocode_p50) if not math.isnan(p)]
        fast = all(p <= BARS_MEDIAN_MS for p in medians)
        shown = " / ".join("-" if math.isnan(p) else f"{p:.2f}" for p in (code_p50, nocode_p50))
        clean = f"{mark(false_reads == 0)} {false_reads} in {len(tally.nocode_ns)}"
        p95 = _pct([*tally.code_ns, *tally.nocode_ns])[1]
        lines.append(
            f"| `{tally.spec}` | {mark(fast)} {shown} ms | {mark(p95 <= budget)} {p95:.2f} ms "
            f"| {mark(single >= BARS_SINGLE)} {100 * single:.2f} % "
            f"({100 * (single - BARS_SINGLE):+.2f} pt) "
            f"| {mark(triple >= BARS_TRIPLE)} {100 * triple:.2f} % "
            f"({100 * (triple - BARS_TRIPLE):+.2f} pt) "
            f"| {clean if tally.nocode_ns else '- (no frames)'} |"
        )
    return lines


_BINS: list[tuple[str, str, list[tuple[str, Callable[[Any], bool]]]]] = [
    (
        "distance",
        "distance",
        [
            ("15-25 cm", lambda v: v < 25),
            ("25-35 cm", lambda v: 25 <= v < 35),
            ("35-45 cm", lambda v: 35 <= v < 45),
            ("45-60 cm", lambda v: v >= 45),
        ],
    ),
    (
        "module size (scanning frame)",
        "module_px",
        [
            ("< 1.0 px", lambda v: v < 1.0),
            ("1.0-1.5 px", lambda v: 1.0 <= v < 1.5),
            ("1.5-2.0 px", lambda v: 1.5 <= v < 2.0),
            ("2.0-3.0 px", lambda v: 2.0 <= v < 3.0),
            ("≥ 3.0 px", lambda v: v >= 3.0),
        ],
    ),
    (
        "motion blur",
        "motion",
        [("none", lambda v: v == 0), ("< 6 px", lambda v: 0 < v < 6), ("≥ 6 px", lambda v: v >= 6)],
    ),
    (
        "finger over the code",
        "covered",
        [("no", lambda v: v == 0), ("yes", lambda v: v > 0)],
    ),
    (
        "tilt",
        "tilt",
        [
            ("< 15°", lambda v: v < 15),
            ("15-30°", lambda v: 15 <= v < 30),
            ("≥ 30°", lambda v: v >= 30),
        ],
    ),
    (
        "blur sigma",
        "blur",
        [
            ("< 0.8 px", lambda v: v < 0.8),
            ("0.8-1.2 px", lambda v: 0.8 <= v < 1.2),
            ("≥ 1.2 px", lambda v: v >= 1.2),
        ],
    ),
    (
        "contrast",
        "contrast",
        [
            ("full", lambda v: v >= 1),
            ("60-100 %", lambda v: 0.6 <= v < 1),
            ("< 60 %", lambda v: v < 0.6),
        ],
    ),
    (
        "glare",
        "glare",
        [
            ("none", lambda v: v == 0),
            ("< 0.35", lambda v: 0 < v < 0.35),
            ("≥ 0.35", lambda v: v >= 0.35),
        ],
    ),
    ("noise sigma", "noise", [("< 6", lambda v: v < 6), ("≥ 6", lambda v: v >= 6)]),
    (
        "card",
        "card",
        [
            ("label on paper", lambda v: v == "label on paper"),
            ("pass on paper", lambda v: v == "pass on paper"),
            ("pass on phone", lambda v: v == "pass on phone"),
        ],
    ),
]


def breakdown_table(run: Run) -> list[str]:
    """Read rates by condition: where each decoder loses its reads."""
    header = " | ".join(f"`{t.spec}` 1 frame / 3 frames" for t in run.tallies)
    lines = [
        f"| condition | samples | {header} |",
        "|---|---|" + "---|" * len(run.tallies),
    ]
    for title, key, bins in _BINS:
        for label, test in bins:
            frames = [i for i, f in enumerate(run.frame_features) if test(f[key])]
            samples = [i for i, f in enumerate(run.sample_features) if test(f[key])]
            if not frames or not samples:
                continue
            rates = " | ".join(
                f"{100 * sum(t.frame_hits[i] for i in frames) / len(frames):.1f} % / "
                f"{100 * sum(t.sample_hits[i] for i in samples) / len(samples):.1f} %"
                for t in run.tallies
            )
            lines.append(f"| {title}: {label} | {len(samples)} | {rates} |")
    return lines


def ablation_table(run: Run) -> list[str]:
    """1-frame read rates with one degradation at a time made mild."""
    header = " | ".join(f"`{t.spec}`" for t in run.tallies)
    lines = [f"| first frame of {run.ablation_samples} samples, with | {header} |"]
    lines.append("|---|" + "---|" * len(run.tallies))
    for name, hits in run.ablation.items():
        rates = " | ".join(f"{100 * n / max(1, run.ablation_samples):.1f} %" for n in hits)
        lines.append(f"| {name} | {rates} |")
    return lines


def attempts_lines(run: Run) -> list[str]:
    """Which step of the pipeline read the code frames it read."""
    lines = []
    for tally in run.tallies:
        if tally.attempts:
            total = sum(tally.attempts.values())
            parts = ", ".join(
                f"{name} {count} ({100 * count / total:.1f} %)"
                for name, count in tally.attempts.most_common()
            )
            lines += [f"`{tally.spec}` read its {total} code frames with: {parts}.", ""]
    return lines


def report(run: Run, argv: Sequence[str]) -> str:
    """The whole Markdown report."""
    args = run.args
    command = ".venv/bin/python -m bench.decoders " + shlex.join(argv)
    nocode = ", ".join(f"{k} {n}" for k, n in sorted(run.nocode_kinds.items()))
    formats = ", ".join(
        f"{k} {run.non_qr_readable[k]}/{n}" for k, n in sorted(run.non_qr_formats.items())
    )
    lines = [
        f"Command: `{command.strip()}`",
        "",
        f"Corpus: seed {args.seed}; {args.frames} code samples x {CONSECUTIVE} consecutive "
        f"frames = {args.frames * CONSECUTIVE} frames with a code; {args.no_code} frames with "
        f"no code ({nocode}) cut from {args.textures} textures; {args.non_qr} frames of other "
        f"symbologies (format: read by an unrestricted zxing-cpp / frames: {formats}). "
        f"Scanning frames 640x480, full-resolution frames {FULL_W}x{FULL_H}, greyscale. "
        f"Item labels in the `{args.label}` format (`cs-admin labels --format {args.label}`).",
        "",
        f"Pipeline retry budget on this machine: {args.budget_ms:g} ms "
        f"({PI_RETRY_BUDGET_MS:g} ms on a Pi 4 over the x86-to-Pi factor {PI_FACTOR:g}); "
        f"frame budget {PI_FRAME_BUDGET_MS:g} ms on the Pi, "
        f"{PI_FRAME_BUDGET_MS / PI_FACTOR:.2f} ms here.",
        "",
        f"Machine: {os.cpu_count()} CPUs, load average {run.load_before[0]:.2f} before and "
        f"{run.load_after[0]:.2f} after; {_versions()}. Wall time {run.seconds:.0f} s.",
        "",
        "1-frame read: share of all frames with a code decoded to exactly their text. Within 3 "
        "frames: share of samples where any of the 3 consecutive frames was. Misreads: any "
        "other text returned from a code frame. Times: `scan()` alone "
        "(`time.perf_counter_ns`), decoders taking turns on each frame.",
        "",
        *results_table(run),
        "",
        "Bars (product brief):",
        "",
        *bars_table(run),
        "",
        *attempts_lines(run),
        "Read rates by condition (1 frame: each frame binned by its own parameters; "
        "3 frames: each sample by its first frame's):",
        "",
        *breakdown_table(run),
        "",
        "What each degradation costs (the same frames with one thing made mild):",
        "",
        *ablation_table(run),
        "",
        "Corpus distribution:",
        "",
        "| parameter | distribution |",
        "|---|---|",
        *(f"| {name} | {text} |" for name, text in DISTRIBUTION),
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.decoders", description=__doc__.split("\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--frames",
        type=int,
        help=f"code samples, each {CONSECUTIVE} consecutive frames (default 2000; quick 150)",
    )
    parser.add_argument("--no-code", type=int, help="frames with no code (default 10000)")
    parser.add_argument("--non-qr", type=int, help="frames of other symbologies (default 300)")
    parser.add_argument("--textures", type=int, help="texture pool size (default 200)")
    parser.add_argument(
        "--ablation", type=int, help="samples re-rendered with one degradation removed (300)"
    )
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument(
        "--decoders",
        default="zxing-cpp:plain,zxing-cpp",
        help="comma-separated specs: pyzbar, zxing-cpp (the kiosk's pipeline), "
        "zxing-cpp:plain (one call on the scanning frame), or zxing-cpp:<opt>=<value>:… with "
        "opts binarizer (local-average|global-histogram|fixed-threshold), try_rotate, "
        "try_downscale, try_invert (0/1)",
    )
    parser.add_argument(
        "--distance-cm",
        default=f"{DISTANCE_CM[0]:g},{DISTANCE_CM[1]:g}",
        help="range LO,HI of distances codes are held at (default %(default)s); for finding "
        "the envelope in which a decoder meets the bars",
    )
    parser.add_argument(
        "--label",
        choices=sorted(FORMATS),
        default=DEFAULT_FORMAT.name,
        help="the item label format, drawn as `cs-admin labels --format` prints it "
        "(default %(default)s; sheet: the 0.68 mm label of before)",
    )
    parser.add_argument(
        "--covered",
        type=float,
        default=COVERED,
        help="share of samples with a finger over the code (default %(default)s)",
    )
    parser.add_argument(
        "--budget-ms",
        type=float,
        default=PI_RETRY_BUDGET_MS / PI_FACTOR,
        help="the pipeline's retry budget on this machine (default %(default)s: "
        f"{PI_RETRY_BUDGET_MS:g} ms on a Pi over the x86-to-Pi factor {PI_FACTOR:g})",
    )
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    parser.add_argument("--quick", action="store_true", help="a smoke run well under a minute")
    parser.add_argument(
        "--photos",
        type=Path,
        help="instead of the corpus: read every photo under this directory that has its "
        "text in a .txt beside it (zxing-cpp's test-sample layout)",
    )
    args = parser.parse_args(argv)
    defaults = (150, 1000, 45, 60, 30) if args.quick else (2000, 10_000, 300, 200, 300)
    names = ("frames", "no_code", "non_qr", "textures", "ablation")
    for name, default in zip(names, defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
        if getattr(args, name) < (1 if name == "textures" else 0):
            parser.error(f"--{name.replace('_', '-')} is too small")
    try:
        low, high = (float(part) for part in args.distance_cm.split(","))
    except ValueError:
        parser.error("--distance-cm takes LO,HI, e.g. 15,60")
    if not 5 <= low <= high:
        parser.error("--distance-cm needs 5 <= LO <= HI")
    args.distance_cm = (low, high)
    if not 0 <= args.covered <= 1:
        parser.error("--covered is a share, 0 to 1")
    args.decoders = [spec.strip() for spec in args.decoders.split(",") if spec.strip()]
    return args


# --- photographs of real codes -----------------------------------------------------------

_PHOTO_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})


def photo_rows(root: Path, budget_s: float) -> list[tuple[str, int, int]]:
    """(how, read, photos) on every photo under ``root`` that has its text beside it.

    The layout is zxing-cpp's test samples: ``name.jpg`` next to ``name.txt`` holding the
    code's text. Each photo is read as it is, and as the kiosk would see it: area-averaged
    to 1/FULL_SCALE as the scanning frame, with the photo itself as the full frame.
    """
    plain, pipeline = ZxingDecoder(), ScanPipeline(budget_s=budget_s)
    ways: dict[str, None] = {}  # the ways, in the order they are tried
    counts: Counter[str] = Counter()
    photos = 0
    for image in sorted(root.rglob("*")):
        expected_file = image.with_suffix(".txt")
        if image.suffix.lower() not in _PHOTO_SUFFIXES or not expected_file.exists():
            continue
        expected = expected_file.read_text(encoding="utf-8", errors="replace")
        with Image.open(image) as opened:
            full = np.asarray(opened.convert("L"), dtype=np.uint8)
        height, width = full.shape
        small = Image.fromarray(full).resize(
            (max(1, round(width / FULL_SCALE)), max(1, round(height / FULL_SCALE))),
            Image.Resampling.BOX,
        )
        lores = np.asarray(small, dtype=np.uint8)
        scale = f"1/{FULL_SCALE:g}"
        found = {
            "one zxing-cpp call on the photo": plain.decode(full),
            "the pipeline on the photo": pipeline.scan(Capture(full)),
            f"one zxing-cpp call on the photo at {scale} (before)": plain.decode(lores),
            f"the pipeline at {scale} alone (no full frame)": pipeline.scan(Capture(lores)),
            f"the pipeline at {scale} with the photo as full frame (after)": pipeline.scan(
                Capture(lores, full)
            ),
        }
        photos += 1
        for how, texts in found.items():
            counts[how] += expected in texts
            ways.setdefault(how, None)
    return [(how, counts[how], photos) for how in ways]


def photos_report(root: Path, budget_s: float, argv: Sequence[str]) -> str:
    """The Markdown table for ``--photos``."""
    lines = [
        "Command: `.venv/bin/python -m bench.decoders " + shlex.join(argv) + "`",
        "",
        "| how | photos read |",
        "|---|---|",
    ]
    for how, read, photos in photo_rows(root, budget_s):
        lines.append(f"| {how} | {read} / {photos} ({100 * read / max(1, photos):.1f} %) |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.photos:
        text = photos_report(args.photos, args.budget_ms / 1000, argv)
        print(text)
        if args.out:
            args.out.write_text(text, encoding="utf-8")
        return 0
    text = report(run_benchmark(args), argv)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
