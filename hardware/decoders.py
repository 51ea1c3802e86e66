"""Picks a QR decoder backend by the name settings use for it."""

from __future__ import annotations

from typing import Literal

from hardware.interfaces import Decoder
from hardware.zbar import ZbarDecoder
from hardware.zxing import ZxingDecoder

__all__ = ["DecoderName", "make_decoder"]

DecoderName = Literal["pyzbar", "zxing-cpp"]


def make_decoder(name: DecoderName) -> Decoder:
    """A ready decoder for ``name``; raises DecoderError if its library is missing."""
    if name == "pyzbar":
        return ZbarDecoder()
    if name == "zxing-cpp":
        return ZxingDecoder()
    raise ValueError(f"unknown decoder {name!r}; expected 'pyzbar' or 'zxing-cpp'")
