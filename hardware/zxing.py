"""The zxing-cpp QR decoder backend; the only module that imports zxingcpp."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np

from hardware.errors import DecoderError
from hardware.interfaces import Capture, Frame
from hardware.regions import Box

__all__ = ["BinarizerName", "Sighting", "ZxingDecoder"]

BinarizerName = Literal["local-average", "global-histogram", "fixed-threshold"]

_BINARIZERS: dict[BinarizerName, str] = {
    "local-average": "LocalAverage",
    "global-histogram": "GlobalHistogram",
    "fixed-threshold": "FixedThreshold",
}


class Sighting(NamedTuple):
    """What one look at a frame found: the codes read, and where codes were seen unread."""

    texts: list[str]
    unread: list[Box]


class ZxingDecoder:
    """Finds QR codes with zxing-cpp, every other symbology switched off."""

    name: str = "zxing-cpp"

    def __init__(
        self,
        *,
        try_rotate: bool = True,
        try_downscale: bool = True,
        try_invert: bool = False,
        binarizer: BinarizerName = "local-average",
    ) -> None:
        try:
            # Imported here so a broken wheel surfaces as a DecoderError at setup.
            import zxingcpp
        except ImportError as exc:
            raise DecoderError(
                f"zxing-cpp is not importable ({exc}); pip install zxing-cpp"
            ) from exc
        formats = zxingcpp.BarcodeFormat
        # zxing-cpp 3 made QRCode a symbology that also matches Micro QR and rMQR, so
        # name the two QR models themselves; 2.x has no model names and QRCode is QR.
        models = [getattr(formats, "QRCodeModel1", None), getattr(formats, "QRCodeModel2", None)]
        wanted = [model for model in models if model is not None] or [formats.QRCode]
        self._zxingcpp: Any = zxingcpp
        # Results report the generic QRCode format, Micro QR and rMQR their own: a second
        # check in case a reader ever ignores the format filter.
        self._allowed = frozenset([*wanted, formats.QRCode])
        self._options: dict[str, Any] = {
            "formats": zxingcpp.BarcodeFormats(wanted),
            "try_rotate": try_rotate,
            "try_downscale": try_downscale,
            # Our labels are dark on light; trying the inverse as well nearly doubles
            # the time spent on frames with no code in view, which is most frames.
            "try_invert": try_invert,
            "binarizer": getattr(zxingcpp.Binarizer, _BINARIZERS[binarizer]),
        }

    def decode(self, frame: Frame) -> list[str]:
        """The texts of every valid QR code in ``frame``, decoded as UTF-8."""
        return self._read(frame, return_errors=False).texts

    def scan(self, capture: Capture) -> list[str]:
        """The codes in the capture's scanning frame; one decoder alone ignores ``full``."""
        return self.decode(capture.frame)

    def sight(self, frame: Frame) -> Sighting:
        """The codes read in ``frame``, and the boxes of QR symbols found but not read.

        A symbol whose finder patterns were found but whose modules did not decode is
        reported with its corners, so a caller can look at that place again more closely.
        """
        return self._read(frame, return_errors=True)

    def _read(self, frame: Frame, *, return_errors: bool) -> Sighting:
        if frame.ndim != 2 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be a 2-D uint8 array, got {frame.dtype} {frame.shape}")
        if not frame.size:
            return Sighting([], [])
        try:
            # A 2-D uint8 array is read as luminance through the buffer protocol, strides
            # and all, so there is no copy even for a cropped view.
            found = self._zxingcpp.read_barcodes(
                frame, return_errors=return_errors, **self._options
            )
        except Exception as exc:
            raise DecoderError(f"zxing-cpp failed to scan a frame: {exc}") from exc
        texts: list[str] = []
        unread: list[Box] = []
        for barcode in found:
            if barcode.format not in self._allowed:
                continue
            if barcode.valid:
                texts.append(barcode.bytes.decode("utf-8", errors="replace"))
            else:
                unread.append(_box(barcode.position))
        return Sighting(texts, unread)


def _box(position: Any) -> Box:
    """The upright bounding box of a zxing-cpp position (four corner points)."""
    corners = (
        position.top_left,
        position.top_right,
        position.bottom_right,
        position.bottom_left,
    )
    xs = [corner.x for corner in corners]
    ys = [corner.y for corner in corners]
    return Box(min(xs), min(ys), max(xs) + 1, max(ys) + 1)
