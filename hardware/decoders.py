"""Picks a QR decoder backend by the name settings use for it."""

from __future__ import annotations

from typing import Literal

from hardware.interfaces import Decoder
from hardware.pipeline import ScanPipeline
from hardware.zbar import ZbarDecoder

__all__ = ["DecoderName", "make_decoder"]

DecoderName = Literal["pyzbar", "zxing-cpp"]


def make_decoder(name: DecoderName) -> Decoder:
    """A ready decoder for ``name``; raises DecoderError if its library is missing.

    ``zxing-cpp`` is the whole pipeline (hardware.pipeline): zxing-cpp on the scanning
    frame, then on the full-resolution frame where a code seems to be. ``pyzbar`` reads
    the scanning frame only.
    """
    if name == "pyzbar":
        return ZbarDecoder()
    if name == "zxing-cpp":
        return ScanPipeline()
    raise ValueError(f"unknown decoder {name!r}; expected 'pyzbar' or 'zxing-cpp'")
