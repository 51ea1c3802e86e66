"""The pyzbar (ZBar) QR decoder backend; the only module that imports pyzbar."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hardware.errors import DecoderError
from hardware.interfaces import Capture, Frame

__all__ = ["ZbarDecoder"]


class ZbarDecoder:
    """Finds QR codes with ZBar (libzbar0), every other symbology switched off."""

    name: str = "pyzbar"

    def __init__(self) -> None:
        try:
            # Imported here, not at the top: pyzbar loads libzbar0 on import and raises
            # ImportError without it, which should surface as a DecoderError at setup.
            from pyzbar import pyzbar
        except ImportError as exc:
            raise DecoderError(
                f"pyzbar cannot load the ZBar library ({exc}); install it with "
                "'apt install libzbar0' (and pip install pyzbar)"
            ) from exc
        self._decode: Callable[..., Sequence[Any]] = pyzbar.decode
        self._symbols = [pyzbar.ZBarSymbol.QRCODE]

    def scan(self, capture: Capture) -> list[str]:
        """The codes in the capture's scanning frame; one decoder alone ignores ``full``."""
        return self.decode(capture.frame)

    def decode(self, frame: Frame) -> list[str]:
        """The texts of every QR code in ``frame``, decoded as UTF-8."""
        if frame.ndim != 2 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be a 2-D uint8 array, got {frame.dtype} {frame.shape}")
        height, width = frame.shape
        if not height or not width:
            return []
        # Given an ndarray, pyzbar copies it with tobytes(); its (pixels, width, height)
        # form takes any buffer ctypes can point at, so a C-contiguous frame (read-only
        # or not) is handed to ZBar in place. ZBar only reads the pixels, and `pixels`
        # keeps them alive until the scan returns.
        pixels = np.ascontiguousarray(frame)
        buffer = (ctypes.c_ubyte * pixels.size).from_address(pixels.ctypes.data)
        try:
            found = self._decode((buffer, width, height), symbols=self._symbols)
        except Exception as exc:
            raise DecoderError(f"ZBar failed to scan a {width}x{height} frame: {exc}") from exc
        return [symbol.data.decode("utf-8", errors="replace") for symbol in found]
