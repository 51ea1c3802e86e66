"""Printed codes: A4 label sheets and member pass cards, drawn alike for cs-admin and console.

What the contract's codes look like on paper (QR alphanumeric, 300 dpi, sharp modules);
both printing surfaces draw through here so a label printed from either scans the same.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import segno
from PIL import Image, ImageDraw, ImageFont


class LabelTooBigError(ValueError):
    """A code too long to print legibly in one label cell."""


DPI = 300
PAGE_PX = (2480, 3508)  # A4 at 300 dpi
COLUMNS, ROWS = 3, 8
PER_PAGE = COLUMNS * ROWS
MARGIN_PX = (71, 94)  # 6 mm left/right, 8 mm top/bottom: inside most printers' reach
QUIET_MODULES = 4  # the quiet zone the QR standard asks for
# 6 px at 300 dpi is 0.51 mm: a phone or a kiosk camera resolves that from a hand's length.
MIN_MODULE_PX = 6
_TEXT_PX = (34, 28)  # name, id


@dataclass(frozen=True)
class LabelCard:
    """One label to print: the signed code and what people read under it."""

    item_id: str
    name: str
    code: str


def make_qr(code: str) -> segno.QRCode:
    """A QR code for one of central's codes, in alphanumeric mode (smaller, faster to scan)."""
    return segno.make_qr(code, mode="alphanumeric", error="m")


def cell_box(index: int) -> tuple[int, int, int, int]:
    """The pixel box (left, top, right, bottom) of label ``index`` on its page."""
    slot = index % PER_PAGE
    row, column = divmod(slot, COLUMNS)
    width = (PAGE_PX[0] - 2 * MARGIN_PX[0]) // COLUMNS
    height = (PAGE_PX[1] - 2 * MARGIN_PX[1]) // ROWS
    left = MARGIN_PX[0] + column * width
    top = MARGIN_PX[1] + row * height
    return left, top, left + width, top + height


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _paste_qr(page: Image.Image, qr: segno.QRCode, centre_x: int, top: int, module_px: int) -> int:
    """Paste ``qr`` (with its quiet zone) centred at ``centre_x``; its bottom edge."""
    dark = np.array(list(qr.matrix_iter(scale=1, border=QUIET_MODULES)), dtype=bool)
    # One pixel per module, scaled up without smoothing: every module stays a sharp square.
    small = Image.fromarray(np.where(dark, 0, 255).astype(np.uint8), mode="L")
    side = small.width * module_px
    page.paste(small.resize((side, side), Image.Resampling.NEAREST), (centre_x - side // 2, top))
    return top + side


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """``text``, cut with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def module_px_for(qr: segno.QRCode, box_height: int) -> int:
    """The largest whole-pixel module that leaves room for two lines of text in the cell."""
    modules = int(qr.symbol_size(scale=1, border=QUIET_MODULES)[0])
    room = box_height - sum(_TEXT_PX) - 24
    module = room // modules
    if module < MIN_MODULE_PX:
        raise LabelTooBigError(
            f"a label code of version {qr.version} is too big to print at "
            f"{MIN_MODULE_PX} px per module in a {COLUMNS}x{ROWS} sheet cell"
        )
    return module


def label_pages(
    cards: Sequence[LabelCard], progress: Callable[[int], None] | None = None
) -> list[Image.Image]:
    """The A4 pages (greyscale, 300 dpi) holding ``cards`` 24 to a page, in order."""
    pages: list[Image.Image] = []
    name_font, id_font = _font(_TEXT_PX[0]), _font(_TEXT_PX[1])
    for index, card in enumerate(cards):
        if index % PER_PAGE == 0:
            pages.append(Image.new("L", PAGE_PX, 255))
        page = pages[-1]
        left, top, right, bottom = cell_box(index)
        qr = make_qr(card.code)
        module = module_px_for(qr, bottom - top)
        qr_bottom = _paste_qr(page, qr, (left + right) // 2, top + 6, module)
        draw = ImageDraw.Draw(page)
        width = right - left - 24
        for text, font, y in (
            (card.name, name_font, qr_bottom + 2),
            (card.item_id, id_font, qr_bottom + 4 + _TEXT_PX[0]),
        ):
            fitted = _fit(draw, text, font, width)
            draw.text(((left + right) // 2, y), fitted, font=font, fill=0, anchor="mt")
        if progress is not None:
            progress(index + 1)
    return pages


def pdf_bytes(pages: Sequence[Image.Image]) -> bytes:
    """The pages as one PDF; bilevel, so modules go in losslessly (CCITT G4, not JPEG)."""
    first, *rest = (page.point(lambda v: 255 if v >= 128 else 0, mode="1") for page in pages)
    out = io.BytesIO()
    first.save(out, "PDF", resolution=DPI, save_all=True, append_images=rest)
    return out.getvalue()


# --- member passes -------------------------------------------------------------------------

PASS_MODULE_PX = 10
PASS_WIDTH = 640


def pass_lines(member_name: str, member_id: str, expires_at: datetime) -> list[str]:
    until = expires_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    return [member_name, member_id, f"valid until {until}", "single use: opens one checkout"]


def pass_image(code: str, member_name: str, member_id: str, expires_at: datetime) -> Image.Image:
    """A pass card: the QR with the member's name and the pass's expiry under it."""
    qr_side = int(make_qr(code).symbol_size(scale=PASS_MODULE_PX, border=QUIET_MODULES)[0])
    width = max(PASS_WIDTH, qr_side + 40)
    lines = pass_lines(member_name, member_id, expires_at)
    height = 80 + qr_side + 48 * len(lines) + 20
    card = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(card)
    title, body = _font(40), _font(32)
    draw.text((width // 2, 20), "CommunityShare pass", font=title, fill=0, anchor="mt")
    bottom = _paste_qr(card, make_qr(code), width // 2, 72, PASS_MODULE_PX)
    for number, line in enumerate(lines):
        fitted = _fit(draw, line, body, width - 40)
        draw.text((width // 2, bottom + 8 + 48 * number), fitted, font=body, fill=0, anchor="mt")
    return card
