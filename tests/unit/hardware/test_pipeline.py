"""The decoder pipeline reads codes too small for the scanning frame, and only codes."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from PIL import Image

from hardware.decoders import make_decoder
from hardware.interfaces import Capture, Frame
from hardware.pipeline import ScanPipeline
from hardware.regions import Box, code_regions
from hardware.replay import ReplayCamera, SceneCamera
from hardware.synthetic import blank_frame, degrade, render_code
from hardware.zxing import ZxingDecoder

LABEL = "CS1.L.K1.DRILL-01.1.ABCDEFGHIJKLMNOPQRSTUVWX"
PASS = "CS1.P.K1.P7Q2.M0042.LZ8K3Q.ABCDEFGHIJKLMNOP"
FULL_W, FULL_H = 1728, 1296  # Camera Module 3's 4:3 stream pair, as hardware.picamera asks


def camera_capture(
    text: str,
    *,
    module_px: int,
    angle: float = 0.0,
    center: tuple[float, float] = (500.0, 800.0),
    seed: int = 1,
    blur: float = 0.8,
    levels: tuple[int, int] = (20, 200),
) -> Capture:
    """What one request gives: a full frame of ``text`` and its 640x480 area-average.

    ``levels`` are the grey levels of the code's dark modules and of its light ground.
    """
    dark, light = levels
    full = render_code(
        text,
        width=FULL_W,
        height=FULL_H,
        module_px=module_px,
        angle=angle,
        center=center,
        foreground=dark,
        background=light,
    )
    full = degrade(full, rng=np.random.default_rng(seed), blur=blur, noise=3)
    lores = Image.fromarray(full).resize((640, 480), Image.Resampling.BOX)
    return Capture(np.asarray(lores, dtype=np.uint8), full)


def clutter(seed: int) -> Frame:
    """A 640x480 scene of random grey rectangles and noise: busy, but holding no code."""
    rng = np.random.default_rng(seed)
    frame = blank_frame(640, 480, level=150, noise=4, seed=seed)
    for _ in range(40):
        x, y = int(rng.integers(0, 600)), int(rng.integers(0, 440))
        w, h = int(rng.integers(4, 120)), int(rng.integers(4, 120))
        frame[y : y + h, x : x + w] = int(rng.integers(0, 256))
    return frame


def upscaled(frame: Frame) -> Capture:
    full = Image.fromarray(frame).resize((FULL_W, FULL_H), Image.Resampling.BILINEAR)
    return Capture(frame, np.asarray(full, dtype=np.uint8))


# --- reading -----------------------------------------------------------------------------


@pytest.mark.parametrize("angle", [0.0, 20.0, 45.0])
def test_a_label_too_small_for_the_scanning_frame_is_read_from_the_full_frame(
    angle: float,
) -> None:
    # 3 px a module in the full frame is 1.1 px in the scanning frame: past reading there.
    capture = camera_capture(LABEL, module_px=3, angle=angle)
    pipeline = ScanPipeline(budget_s=1.0)

    assert ZxingDecoder().decode(capture.frame) == []
    assert pipeline.scan(capture) == [LABEL]
    assert pipeline.reads["closer"] == 1


def test_a_code_the_scanning_frame_reads_costs_one_look() -> None:
    capture = camera_capture(PASS, module_px=5)
    pipeline = ScanPipeline(budget_s=1.0)

    assert pipeline.scan(capture) == [PASS]
    assert dict(pipeline.reads) == {"fast": 1}


def test_without_a_full_frame_the_pipeline_still_reads_the_scanning_frame() -> None:
    # SceneCamera and single-stream cameras hand over no full frame.
    frame = render_code(LABEL, module_px=4)
    decoder = make_decoder("zxing-cpp")

    assert decoder.scan(Capture(frame)) == [LABEL]
    assert decoder.decode(frame) == [LABEL]


def test_a_code_turned_45_degrees_at_1_5_px_is_read_by_enlarging_the_place() -> None:
    # No full frame: the scanning frame's own patch is enlarged, which samples a module
    # turned off the pixel grid better than zxing-cpp's look at the frame as it is.
    capture = camera_capture(LABEL, module_px=4, angle=45.0)
    pipeline = ScanPipeline(budget_s=1.0)

    assert ZxingDecoder().decode(capture.frame) == []
    assert pipeline.scan(Capture(capture.frame)) == [LABEL]


def test_a_pass_on_a_dim_phone_screen_is_found_by_its_faint_texture_and_read() -> None:
    # Black 20 on a screen turned down to 50: modules 30 grey levels apart, too faint for
    # the sharp look for code texture, and too small (3 px, 1.1 in the scanning frame).
    capture = camera_capture(PASS, module_px=3, angle=20.0, levels=(20, 50))
    pipeline = ScanPipeline(budget_s=1.0)

    assert ZxingDecoder().sight(capture.frame) == ([], [])
    assert pipeline.scan(capture) == [PASS]
    assert pipeline.reads["closer"] == 1


def test_faint_texture_alone_gets_a_closer_look_but_no_retries() -> None:
    # Fine grain 20 grey levels deep, like woven cloth in dim light: faint texture
    # everywhere and no code. Most scenes have some, so it must cost one look, not four.
    grain = np.random.default_rng(3).integers(0, 2, (240, 320), dtype=np.uint8) * 20 + 100
    frame = np.ascontiguousarray(np.repeat(np.repeat(grain, 2, axis=0), 2, axis=1))
    pipeline = ScanPipeline(budget_s=1.0)

    assert pipeline.scan(upscaled(frame)) == []
    assert pipeline.looks["closer"] >= 1
    assert set(pipeline.looks) == {"closer"}


def test_a_code_out_of_focus_is_read_by_the_sharpened_retry() -> None:
    # Focus blur of sigma 1.4 px over 3 px modules: the closer look sees grey, the
    # unsharp mask pulls the modules apart again.
    capture = camera_capture(LABEL, module_px=3, angle=20.0, blur=1.4)
    pipeline = ScanPipeline(budget_s=1.0)

    assert pipeline.scan(capture) == [LABEL]
    assert dict(pipeline.reads) == {"sharpened": 1}


@pytest.mark.parametrize("seed", range(6))
def test_frames_without_a_code_give_no_text(seed: int) -> None:
    pipeline = ScanPipeline(budget_s=1.0)

    assert pipeline.scan(upscaled(clutter(seed))) == []
    assert pipeline.scan(Capture(blank_frame(noise=6, seed=seed))) == []


def test_an_inverted_code_is_read_by_the_inverted_retry() -> None:
    # A light-on-dark pass (a phone in dark mode) in the full frame only.
    capture = camera_capture(LABEL, module_px=3)
    assert capture.full is not None
    inverted = Capture(np.subtract(255, capture.frame), np.subtract(255, capture.full))
    pipeline = ScanPipeline(budget_s=1.0)

    assert pipeline.scan(inverted) == [LABEL]
    assert pipeline.reads["inverted"] == 1


# --- the time budget ---------------------------------------------------------------------


class SteppingClock:
    """A clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self._ticks = itertools.count()
        self._step = step

    def __call__(self) -> float:
        return next(self._ticks) * self._step


def test_a_spent_budget_stops_the_closer_looks() -> None:
    # Every reading of the clock says another whole budget has gone by: no closer look
    # may start, so the small code is missed rather than the frame running late.
    capture = camera_capture(LABEL, module_px=3)
    pipeline = ScanPipeline(budget_s=0.010, clock=SteppingClock(0.010))

    assert pipeline.scan(capture) == []
    assert sum(pipeline.reads.values()) == 0


def test_a_closer_look_starts_while_budget_remains() -> None:
    # The clock has moved less than the budget when the closer look is due: it runs.
    capture = camera_capture(LABEL, module_px=3)
    pipeline = ScanPipeline(budget_s=0.010, clock=SteppingClock(0.004))

    assert pipeline.scan(capture) == [LABEL]


def test_budget_and_regions_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="budget_s"):
        ScanPipeline(budget_s=-1)
    with pytest.raises(ValueError, match="regions"):
        ScanPipeline(regions=-1)


# --- where a code may be -----------------------------------------------------------------


def test_code_regions_centre_on_a_code_too_small_to_read() -> None:
    capture = camera_capture(LABEL, module_px=3, center=(1200.0, 400.0))
    # The code's centre in the scanning frame: (1200, 400) / 2.7.
    cx, cy = 1200 / 2.7, 400 / 2.7

    boxes = code_regions(capture.frame)

    assert boxes
    best = boxes[0]
    assert best.x0 <= cx < best.x1
    assert best.y0 <= cy < best.y1


def test_code_regions_ignore_plain_walls_gradients_and_stripes() -> None:
    wall = blank_frame(noise=6, seed=2)
    gradient = np.tile(np.linspace(20, 235, 640).astype(np.uint8), (480, 1))
    # A 1-D barcode: edges across, none down. A QR code has both.
    stripes = np.tile(np.where(np.arange(640) % 4 < 2, 30, 220).astype(np.uint8), (480, 1))

    assert code_regions(wall) == []
    assert code_regions(gradient) == []
    assert code_regions(stripes) == []


def test_code_regions_find_faint_texture_but_not_the_grain_of_a_noisy_wall() -> None:
    # Sensor noise of sigma 6 in the scanning frame crosses 12 grey levels at 16 % of
    # pixel pairs; the faint look's threshold rises with the frame's own noise instead.
    faint = camera_capture(PASS, module_px=3, center=(1200.0, 400.0), levels=(20, 50))
    cx, cy = 1200 / 2.7, 400 / 2.7

    boxes = code_regions(faint.frame)

    assert boxes
    assert boxes[0].x0 <= cx < boxes[0].x1
    assert boxes[0].y0 <= cy < boxes[0].y1
    for seed in range(4):
        assert code_regions(blank_frame(noise=6, seed=seed)) == []


def test_boxes_scale_and_grow_within_the_frame() -> None:
    box = Box(10, 20, 30, 60)

    assert box.scaled(2.0, 2.0) == Box(20, 40, 61, 121)
    assert box.grown(2.0, 640, 480) == Box(0, 0, 41, 81)


# --- cameras hand over both streams -------------------------------------------------------


def test_scene_camera_serves_a_capture_with_its_full_frame() -> None:
    capture = camera_capture(LABEL, module_px=3)
    assert capture.full is not None
    camera = SceneCamera(fps=None)
    camera.start()
    camera.show_capture(capture, frames=1)

    served = camera.capture(1.0)

    assert np.array_equal(served.frame, capture.frame)
    assert served.full is not None
    assert np.array_equal(served.full, capture.full)
    assert not served.full.flags.writeable
    assert camera.capture(1.0).full is None  # the blank view has no full frame


def test_replay_camera_serves_captures_and_plain_frames() -> None:
    capture = camera_capture(LABEL, module_px=3)
    plain = render_code(PASS)
    camera = ReplayCamera([capture, plain], fps=None)
    camera.start()

    first, second = camera.capture(1.0), camera.capture(1.0)

    assert make_decoder("zxing-cpp").scan(first) == [LABEL]
    assert second.full is None
    assert make_decoder("zxing-cpp").scan(second) == [PASS]


def test_a_full_frame_smaller_than_the_frame_is_refused() -> None:
    frame = blank_frame()
    with pytest.raises(ValueError, match="full frame"):
        ReplayCamera([Capture(frame, blank_frame(320, 240))])
    with pytest.raises(ValueError, match="full frame"):
        SceneCamera().show_capture(Capture(frame, blank_frame(320, 240)))


# --- frames a faulty driver hands over ------------------------------------------------------

BAD_FRAMES: dict[str, Any] = {
    "colour": np.zeros((480, 640, 3), np.uint8),
    "float": np.zeros((480, 640), np.float32),
    "one-dimensional": np.zeros(640, np.uint8),
}


@pytest.mark.parametrize("frame", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_a_bad_frame_is_refused_with_value_error_as_the_plain_decoder_does(frame: Any) -> None:
    # The kiosk's scan source counts a ValueError as a bad frame and goes on scanning.
    with pytest.raises(ValueError, match="2-D uint8"):
        ScanPipeline().scan(Capture(frame))


def test_a_bad_full_frame_is_refused_with_value_error() -> None:
    small = camera_capture(LABEL, module_px=3).frame
    with pytest.raises(ValueError, match="2-D uint8"):
        ScanPipeline(budget_s=1.0).scan(Capture(small, np.zeros((1296, 1728), np.float32)))
