"""Rendered QR codes decode back exactly with both decoders, and nothing else is reported."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
import zxingcpp
from pyzbar import pyzbar

from hardware.decoders import DecoderName, make_decoder
from hardware.errors import DecoderError
from hardware.interfaces import Decoder, Frame
from hardware.pipeline import ScanPipeline
from hardware.synthetic import blank_frame, code_tile, degrade, render_code
from hardware.zbar import ZbarDecoder
from hardware.zxing import ZxingDecoder

LABEL = "CS1.L.K1.DRILL-01.1.ABCDEFGHIJKLMNOPQRSTUVWX"
PASS = "CS1.P.K1.P7Q2.M0042.LZ8K3Q.ABCDEFGHIJKLMNOP"
NAMES: list[DecoderName] = ["pyzbar", "zxing-cpp"]


@pytest.fixture(params=NAMES)
def decoder(request: pytest.FixtureRequest) -> Decoder:
    name: DecoderName = request.param
    return make_decoder(name)


def symbol_frame(symbol: Frame, *, scale: int = 3) -> Frame:
    """A camera frame with ``symbol`` enlarged in its middle on a white background."""
    big = np.repeat(np.repeat(symbol, scale, axis=0), scale, axis=1)
    frame = np.full((480, 640), 255, dtype=np.uint8)
    h, w = big.shape
    top, left = (480 - h) // 2, (640 - w) // 2
    frame[top : top + h, left : left + w] = big
    return frame


def zxing_symbol(text: str, fmt: zxingcpp.BarcodeFormat) -> Frame:
    image = zxingcpp.create_barcode(text, fmt).to_image(scale=1)
    return np.asarray(image, dtype=np.uint8)


# --- rendering -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"angle": 30},
        {"angle": 90},
        {"angle": 180},
        {"module_px": 2},
        {"module_px": 3, "angle": 45},
        {"center": (120, 110)},
        {"error": "H"},
        {"width": 320, "height": 240, "module_px": 3},
    ],
    ids=repr,
)
def test_rendered_code_decodes_exactly(decoder: Decoder, options: dict[str, Any]) -> None:
    frame = render_code(LABEL, **options)

    assert decoder.decode(frame) == [LABEL]


def test_every_code_in_view_is_reported(decoder: Decoder) -> None:
    frame = render_code(LABEL, center=(170, 240))
    frame[:, 340:] = render_code(PASS, center=(470, 240))[:, 340:]

    assert sorted(decoder.decode(frame)) == sorted([LABEL, PASS])


def test_render_places_code_with_the_requested_levels() -> None:
    frame = render_code(LABEL, width=400, height=300, module_px=4, background=210, foreground=30)

    assert frame.shape == (300, 400)
    assert frame.dtype == np.uint8
    assert frame.flags.c_contiguous
    assert set(np.unique(frame).tolist()) == {30, 210}
    # Version 3 is 29 modules plus a 4-module quiet zone each side: 37 * 4 = 148 px,
    # centred; the dark modules start after the quiet zone.
    dark_rows = np.flatnonzero((frame == 30).any(axis=1))
    dark_cols = np.flatnonzero((frame == 30).any(axis=0))
    assert (dark_rows[0], dark_rows[-1]) == (150 - 74 + 16, 150 + 74 - 16 - 1)
    assert (dark_cols[0], dark_cols[-1]) == (200 - 74 + 16, 200 + 74 - 16 - 1)


def test_render_uses_error_level_m_without_boosting() -> None:
    # segno raises the level to Q for this text unless told not to.
    found = zxingcpp.read_barcodes(render_code(LABEL))

    assert [barcode.ec_level for barcode in found] == ["M"]


def test_render_clips_a_code_partly_out_of_view() -> None:
    frame = render_code(LABEL, width=200, height=200, center=(0, 0))
    tile = code_tile(LABEL)
    half = tile.shape[0] // 2

    assert frame.shape == (200, 200)
    assert np.array_equal(frame[: tile.shape[0] - half, : tile.shape[1] - half], tile[half:, half:])
    assert (frame[:, 100:] == 200).all()


def test_code_entirely_out_of_view_leaves_a_blank_frame() -> None:
    frame = render_code(LABEL, center=(-500, -500))

    assert np.array_equal(frame, blank_frame())


@pytest.mark.parametrize(
    "options",
    [{"module_px": 0}, {"quiet_zone": -1}, {"background": 256}, {"width": 0}],
    ids=repr,
)
def test_render_refuses_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"module_px|quiet_zone|background|size"):
        render_code(LABEL, **options)


def test_blank_frame_is_plain_or_seeded_noise() -> None:
    assert np.array_equal(blank_frame(64, 48, level=90), np.full((48, 64), 90, np.uint8))
    noisy = blank_frame(noise=25, seed=7)
    assert noisy.shape == (480, 640)
    assert 20 < float(noisy.std()) < 30
    assert abs(float(noisy.mean()) - 200) < 1
    assert np.array_equal(noisy, blank_frame(noise=25, seed=7))
    with pytest.raises(ValueError, match="noise"):
        blank_frame(noise=-1)


@pytest.mark.parametrize("noise", [0, 12, 40])
def test_blank_and_noisy_frames_give_no_reads(decoder: Decoder, noise: float) -> None:
    assert decoder.decode(blank_frame(noise=noise, seed=3)) == []


def test_empty_frame_gives_no_reads(decoder: Decoder) -> None:
    assert decoder.decode(np.zeros((0, 0), dtype=np.uint8)) == []


def test_decoders_refuse_colour_frames(decoder: Decoder) -> None:
    with pytest.raises(ValueError, match="2-D uint8"):
        decoder.decode(np.zeros((48, 64, 3), dtype=np.uint8))


# --- only QR -------------------------------------------------------------------------

NON_QR = [
    ("CS1-DRILL-01", zxingcpp.BarcodeFormat.Code128),
    ("978020137962", zxingcpp.BarcodeFormat.EAN13),
    ("CS1.L.K1.DRILL-01", zxingcpp.BarcodeFormat.DataMatrix),
    ("CS1.L.K1", zxingcpp.BarcodeFormat.Aztec),
    ("CS1.L", zxingcpp.BarcodeFormat.MicroQRCode),
    ("CS1.L.K1.DRILL", zxingcpp.BarcodeFormat.RMQRCode),
]


@pytest.mark.parametrize(("text", "fmt"), NON_QR, ids=str)
def test_other_symbologies_are_not_reported(
    decoder: Decoder, text: str, fmt: zxingcpp.BarcodeFormat
) -> None:
    frame = symbol_frame(zxing_symbol(text, fmt))
    # The frame really holds a readable symbol: an unrestricted reader finds it.
    assert [barcode.format for barcode in zxingcpp.read_barcodes(frame)] == [fmt]

    assert decoder.decode(frame) == []


def test_segno_micro_qr_is_not_reported(decoder: Decoder) -> None:
    import segno

    micro = segno.make_micro("CS1.L")
    modules = np.pad(np.array(micro.matrix, dtype=np.uint8), 2)
    frame = symbol_frame(np.where(modules == 1, 0, 255).astype(np.uint8), scale=6)
    assert [b.format for b in zxingcpp.read_barcodes(frame)] == [zxingcpp.BarcodeFormat.MicroQRCode]

    assert decoder.decode(frame) == []


@pytest.mark.parametrize(("text", "fmt"), NON_QR[:2], ids=["Code128", "EAN13"])
def test_zbar_is_restricted_to_qr(text: str, fmt: zxingcpp.BarcodeFormat) -> None:
    frame = symbol_frame(zxing_symbol(text, fmt))
    # ZBar left to its defaults does read these 1-D codes.
    assert len(pyzbar.decode(frame)) == 1

    assert ZbarDecoder().decode(frame) == []


def test_only_the_qr_code_is_reported_beside_a_barcode(decoder: Decoder) -> None:
    frame = render_code(LABEL, center=(110, 240))
    barcode = zxing_symbol("CS1-DRILL-01", zxingcpp.BarcodeFormat.Code128)
    barcode = np.repeat(np.repeat(barcode, 2, axis=0), 2, axis=1)
    h, w = barcode.shape
    frame[240 - h // 2 : 240 - h // 2 + h, 250 : 250 + w] = barcode
    assert len(zxingcpp.read_barcodes(frame)) == 2

    assert decoder.decode(frame) == [LABEL]


# --- decoder plumbing ----------------------------------------------------------------


def test_decoders_read_views_and_read_only_frames_without_changing_them(
    decoder: Decoder,
) -> None:
    padded = np.full((480, 704), 200, dtype=np.uint8)
    padded[:, :640] = render_code(LABEL)
    view = padded[:, :640]  # like picamera2's Y plane: rows padded to a stride
    view.flags.writeable = False
    before = view.copy()

    assert not view.flags.c_contiguous
    assert decoder.decode(view) == [LABEL]
    contiguous = np.ascontiguousarray(view)
    contiguous.flags.writeable = False
    assert decoder.decode(contiguous) == [LABEL]
    assert np.array_equal(view, before)


def test_decoders_have_their_setting_names() -> None:
    assert make_decoder("pyzbar").name == "pyzbar"
    assert isinstance(make_decoder("pyzbar"), ZbarDecoder)
    assert make_decoder("zxing-cpp").name == "zxing-cpp"
    # zxing-cpp is the kiosk's whole pipeline: the fast pass and the closer looks.
    assert isinstance(make_decoder("zxing-cpp"), ScanPipeline)


def test_make_decoder_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown decoder"):
        make_decoder("opencv")  # type: ignore[arg-type]


def test_missing_zbar_library_is_a_decoder_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import raise ImportError, as a missing libzbar0 does.
    monkeypatch.setitem(sys.modules, "pyzbar", None)
    monkeypatch.setitem(sys.modules, "pyzbar.pyzbar", None)

    with pytest.raises(DecoderError, match="libzbar0"):
        ZbarDecoder()


def test_missing_zxing_is_a_decoder_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zxingcpp", None)

    with pytest.raises(DecoderError, match="zxing-cpp"):
        ZxingDecoder()


def test_zxing_options_are_passed_through() -> None:
    fussy = ZxingDecoder(try_rotate=False, try_downscale=False, binarizer="global-histogram")
    inverted = np.ascontiguousarray(255 - render_code(LABEL))

    assert fussy.decode(render_code(LABEL)) == [LABEL]
    assert ZxingDecoder().decode(inverted) == []
    assert ZxingDecoder(try_invert=True).decode(inverted) == [LABEL]


def test_library_failure_is_a_decoder_error(monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = ZxingDecoder()

    def broken(*args: object, **kwargs: object) -> list[object]:
        raise RuntimeError("boom")

    monkeypatch.setattr(zxingcpp, "read_barcodes", broken)
    with pytest.raises(DecoderError, match="boom"):
        decoder.decode(render_code(LABEL))


def test_zbar_failure_is_a_decoder_error(monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = ZbarDecoder()

    def broken(*args: object, **kwargs: object) -> list[object]:
        raise pyzbar.PyZbarError("boom")

    monkeypatch.setattr(decoder, "_decode", broken)
    with pytest.raises(DecoderError, match="boom"):
        decoder.decode(render_code(LABEL))


# --- degradation ---------------------------------------------------------------------


def rng(seed: int = 1) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_degrade_with_no_effects_keeps_the_frame() -> None:
    frame = render_code(LABEL)
    out = degrade(frame, rng=rng())

    assert out is not frame
    assert np.array_equal(out, frame)


def test_degrade_is_reproducible_from_the_seed() -> None:
    frame = render_code(LABEL)
    options: dict[str, Any] = {
        "blur": 1.0,
        "noise": 8.0,
        "contrast": 0.7,
        "glare": 0.3,
        "perspective": 0.05,
    }

    first = degrade(frame, rng=rng(5), **options)
    assert np.array_equal(first, degrade(frame, rng=rng(5), **options))
    assert not np.array_equal(first, degrade(frame, rng=rng(6), **options))
    assert first.dtype == np.uint8
    assert first.shape == frame.shape


def edge_energy(frame: Frame) -> float:
    return float(np.abs(np.diff(frame.astype(np.int16), axis=1)).sum())


def test_each_degradation_does_what_it_says() -> None:
    frame = render_code(LABEL)

    assert edge_energy(degrade(frame, rng=rng(), blur=2)) < 0.6 * edge_energy(frame)
    assert float(degrade(frame, rng=rng(), contrast=0.3).std()) == pytest.approx(
        0.3 * float(frame.std()), rel=0.02
    )
    noisy = degrade(frame, rng=rng(), noise=10).astype(float) - frame
    assert 9 < float(noisy[frame == 200].std()) < 11
    glared = degrade(frame, rng=rng(), glare=1.0)
    assert int(glared.max()) == 255
    assert float(glared.mean()) > float(frame.mean()) + 5
    moved = degrade(frame, rng=rng(), perspective=0.1)
    assert not np.array_equal(np.argwhere(moved < 100)[0], np.argwhere(frame < 100)[0])


def test_mildly_degraded_code_still_decodes(decoder: Decoder) -> None:
    frame = degrade(
        render_code(LABEL, module_px=5),
        rng=rng(3),
        blur=0.8,
        noise=4,
        contrast=0.8,
        glare=0.2,
        perspective=0.03,
    )

    assert decoder.decode(frame) == [LABEL]


def test_ruined_code_gives_no_reads(decoder: Decoder) -> None:
    frame = degrade(render_code(LABEL), rng=rng(), blur=6, contrast=0.2, noise=20)

    assert decoder.decode(frame) == []


@pytest.mark.parametrize(
    "options",
    [{"blur": -1}, {"noise": -1}, {"contrast": -0.1}, {"glare": 1.5}, {"perspective": 0.9}],
    ids=repr,
)
def test_degrade_refuses_bad_options(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"blur|perspective"):
        degrade(render_code(LABEL), rng=rng(), **options)


def test_degrade_refuses_colour_frames() -> None:
    with pytest.raises(ValueError, match="2-D uint8"):
        degrade(np.zeros((4, 4, 3), dtype=np.uint8), rng=rng())
