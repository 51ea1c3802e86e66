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
MARGIN_PX = (71, 94)  # 6 mm left/right, 8 mm top/bottom: inside most printers' reach
QUIET_MODULES = 4  # the quiet zone the QR standard asks for
# 6 px at 300 dpi is 0.51 mm: a phone or a kiosk camera resolves that from a hand's length.
MIN_MODULE_PX = 6
_TEXT_PX = (34, 28)  # name, id
_CELL_PAD = 12  # px kept clear at each side of a cell, so neighbours never touch


@dataclass(frozen=True)
class LabelFormat:
    """How many labels an A4 page holds: fewer, larger labels read from further away."""

    name: str
    columns: int
    rows: int
    use: str  # one line for the help text

    @property
    def per_page(self) -> int:
        return self.columns * self.rows

    def cell_box(self, index: int) -> tuple[int, int, int, int]:
        """The pixel box (left, top, right, bottom) of label ``index`` on its page."""
        slot = index % self.per_page
        row, column = divmod(slot, self.columns)
        width = (PAGE_PX[0] - 2 * MARGIN_PX[0]) // self.columns
        height = (PAGE_PX[1] - 2 * MARGIN_PX[1]) // self.rows
        left = MARGIN_PX[0] + column * width
        top = MARGIN_PX[1] + row * height
        return left, top, left + width, top + height


# A kiosk camera sees a 1.69 mm module (20 px at 300 dpi, the tag) at 60 cm with as many
# pixels as a 0.68 mm one (the sheet) at 24 cm (docs/benchmarks.md, Decoders): the tag is
# what a member holds up at arm's length. The sheet stays for items too small for a tag.
TAG = LabelFormat("tag", 3, 4, "12 a page, 1.7 mm modules: reads at arm's length (default)")
SHEET = LabelFormat("sheet", 3, 8, "24 a page, 0.68 mm modules: small items, held close")
FORMATS = {f.name: f for f in (TAG, SHEET)}
DEFAULT_FORMAT = TAG


@dataclass(frozen=True)
class LabelCard:
    """One label to print: the signed code and what people read under it."""

    item_id: str
    name: str
    code: str


@dataclass(frozen=True)
class PrintedQr:
    """Where a label's QR symbol landed: its top-left (quiet zone included) and module size."""

    left: int
    top: int
    module_px: int


def make_qr(code: str) -> segno.QRCode:
    """A QR code for one of central's codes, in alphanumeric mode (smaller, faster to scan)."""
    return segno.make_qr(code, mode="alphanumeric", error="m")


def cell_box(index: int, fmt: LabelFormat = DEFAULT_FORMAT) -> tuple[int, int, int, int]:
    """The pixel box (left, top, right, bottom) of label ``index`` on its page."""
    return fmt.cell_box(index)


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


def module_px_for(
    qr: segno.QRCode,
    box_height: int,
    box_width: int | None = None,
    fmt: LabelFormat = DEFAULT_FORMAT,
) -> int:
    """The largest whole-pixel module that fits the cell and leaves room for two text lines."""
    modules = int(qr.symbol_size(scale=1, border=QUIET_MODULES)[0])
    room = box_height - sum(_TEXT_PX) - 24
    if box_width is not None:
        room = min(room, box_width - 2 * _CELL_PAD)
    module = room // modules
    if module < MIN_MODULE_PX:
        raise LabelTooBigError(
            f"a label code of version {qr.version} is too big to print at "
            f"{MIN_MODULE_PX} px per module in a {fmt.columns}x{fmt.rows} ({fmt.name}) cell"
        )
    return module


def draw_label(
    page: Image.Image, box: tuple[int, int, int, int], card: LabelCard, fmt: LabelFormat
) -> PrintedQr:
    """Draw ``card`` into ``box`` of ``page``: the QR at the top, name and id under it."""
    left, top, right, bottom = box
    qr = make_qr(card.code)
    module = module_px_for(qr, bottom - top, right - left, fmt)
    side = int(qr.symbol_size(scale=module, border=QUIET_MODULES)[0])
    centre = (left + right) // 2
    qr_bottom = _paste_qr(page, qr, centre, top + 6, module)
    draw = ImageDraw.Draw(page)
    name_font, id_font = _font(_TEXT_PX[0]), _font(_TEXT_PX[1])
    width = right - left - 2 * _CELL_PAD
    for text, font, y in (
        (card.name, name_font, qr_bottom + 2),
        (card.item_id, id_font, qr_bottom + 4 + _TEXT_PX[0]),
    ):
        fitted = _fit(draw, text, font, width)
        draw.text((centre, y), fitted, font=font, fill=0, anchor="mt")
    return PrintedQr(centre - side // 2, top + 6, module)


def label_image(
    card: LabelCard, fmt: LabelFormat = DEFAULT_FORMAT
) -> tuple[Image.Image, PrintedQr]:
    """One label cut out of its sheet (what is stuck on the item), and where its QR is."""
    left, top, right, bottom = fmt.cell_box(0)
    cell = Image.new("L", (right - left, bottom - top), 255)
    return cell, draw_label(cell, (0, 0, right - left, bottom - top), card, fmt)


def label_pages(
    cards: Sequence[LabelCard],
    progress: Callable[[int], None] | None = None,
    fmt: LabelFormat = DEFAULT_FORMAT,
) -> list[Image.Image]:
    """The A4 pages (greyscale, 300 dpi) holding ``cards`` in ``fmt``'s cells, in order."""
    pages: list[Image.Image] = []
    for index, card in enumerate(cards):
        if index % fmt.per_page == 0:
            pages.append(Image.new("L", PAGE_PX, 255))
        draw_label(pages[-1], fmt.cell_box(index), card, fmt)
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

# 16 px at 300 dpi is 1.35 mm: a printed pass reads at arm's length like a phone's
# (0.9-1.5 mm), not only up close as the 0.85 mm of 10 px did (docs/benchmarks.md).
PASS_MODULE_PX = 16
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
