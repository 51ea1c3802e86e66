"""Printable codes: A4 label sheets (PDF or PNG) and member pass cards (PNG or SVG)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import segno
from PIL import Image, ImageDraw, ImageFont

from provisioning.api_client import call, open_client, refusal
from provisioning.errors import UsageError
from provisioning.output import table

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
        raise UsageError(
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


def save_pages(pages: Sequence[Image.Image], out: Path) -> list[Path]:
    """Write the pages: one multi-page PDF, or one PNG per page (``name-2.png``, …)."""
    suffix = out.suffix.lower()
    if suffix == ".pdf":
        # Bilevel pages go into the PDF losslessly (CCITT G4); greyscale ones would be
        # JPEG-compressed, blurring module edges.
        first, *rest = (page.point(lambda v: 255 if v >= 128 else 0, mode="1") for page in pages)
        first.save(out, "PDF", resolution=DPI, save_all=True, append_images=rest)
        return [out]
    if suffix != ".png":
        raise UsageError(f"{out}: label sheets are written as .pdf or .png")
    written = []
    for number, page in enumerate(pages, start=1):
        path = out if number == 1 else out.with_name(f"{out.stem}-{number}{out.suffix}")
        page.save(path, "PNG", dpi=(DPI, DPI))
        written.append(path)
    return written


# --- member passes -------------------------------------------------------------------------

PASS_MODULE_PX = 10
PASS_WIDTH = 640


def _pass_lines(member_name: str, member_id: str, expires_at: datetime) -> list[str]:
    until = expires_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    return [member_name, member_id, f"valid until {until}", "single use: opens one checkout"]


def pass_image(code: str, member_name: str, member_id: str, expires_at: datetime) -> Image.Image:
    """A pass card: the QR with the member's name and the pass's expiry under it."""
    qr_side = int(make_qr(code).symbol_size(scale=PASS_MODULE_PX, border=QUIET_MODULES)[0])
    width = max(PASS_WIDTH, qr_side + 40)
    lines = _pass_lines(member_name, member_id, expires_at)
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


def pass_svg(code: str, member_name: str, member_id: str, expires_at: datetime) -> str:
    """The pass card as SVG: one square per dark module (exact at any print size)."""
    qr = make_qr(code)
    module = PASS_MODULE_PX
    side = int(qr.symbol_size(scale=module, border=QUIET_MODULES)[0])
    width = max(PASS_WIDTH, side + 40)
    lines = _pass_lines(member_name, member_id, expires_at)
    height = 80 + side + 48 * len(lines) + 20
    left = (width - side) // 2
    rects = [
        f'<rect x="{left + x * module}" y="{72 + y * module}" width="{module}" height="{module}"/>'
        for y, row in enumerate(qr.matrix_iter(scale=1, border=QUIET_MODULES))
        for x, dark in enumerate(row)
        if dark
    ]
    texts = [
        f'<text x="{width // 2}" y="{72 + side + 40 + 48 * n}" font-size="32">{escape(t)}</text>'
        for n, t in enumerate(lines)
    ]
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
            f' viewBox="0 0 {width} {height}">',
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
            f'<text x="{width // 2}" y="52" font-size="40" text-anchor="middle"'
            ' font-family="sans-serif">CommunityShare pass</text>',
            '<g fill="#000">',
            *rects,
            "</g>",
            '<g text-anchor="middle" font-family="sans-serif">',
            *texts,
            "</g>",
            "</svg>",
            "",
        ]
    )


def save_pass(out: Path, code: str, member_name: str, member_id: str, expires_at: datetime) -> None:
    """Write a pass card as .png or .svg."""
    suffix = out.suffix.lower()
    if suffix == ".svg":
        out.write_text(pass_svg(code, member_name, member_id, expires_at))
    elif suffix == ".png":
        pass_image(code, member_name, member_id, expires_at).save(out, "PNG", dpi=(DPI, DPI))
    else:
        raise UsageError(f"{out}: a pass is written as .png or .svg")


# --- the labels command --------------------------------------------------------------------


def _progress_printer(total: int, enabled: bool, what: str) -> Callable[[int], None]:
    def say(done: int) -> None:
        if enabled and (done == total or done % 10 == 0):
            end = "\n" if done == total else ""
            print(f"\r{what}: {done}/{total}\033[K", end=end, file=sys.stderr, flush=True)

    return say


def cmd_labels(args: argparse.Namespace) -> None:
    """Print an A4 sheet of item labels (3x8 per page) for a shelf or a list of items.

    With --reprint every label gets a new version first: the labels printed before stop
    working (kiosks answer REVOKED), so stick the new ones on straight away.
    """
    out = Path(args.out)
    if out.suffix.lower() not in {".pdf", ".png"}:
        raise UsageError(f"{out}: label sheets are written as .pdf or .png")
    if not out.parent.is_dir():
        # Checked first: with --reprint a sheet that cannot be written revokes labels for nothing.
        raise UsageError(f"{out.parent} is not a folder")
    items = {i["item_id"]: i for i in call(args, "GET", "/items")}
    if args.shelf:
        wanted = [
            i
            for i, row in items.items()
            if row["shelf_id"] == args.shelf and row["state"] != "retired"
        ]
        if not wanted:
            raise UsageError(f"shelf {args.shelf} has no items to label")
    else:
        wanted = [i.strip() for i in args.items.split(",") if i.strip()]
        missing = [i for i in wanted if i not in items]
        if missing:
            raise UsageError(f"no such item(s): {', '.join(missing)}")
    show = args.progress or sys.stderr.isatty()
    fetched = _progress_printer(len(wanted), show, "reprinting" if args.reprint else "fetching")
    cards, versions = [], []
    with open_client(args) as client:  # one connection for hundreds of labels
        for number, item_id in enumerate(wanted, start=1):
            response = client.request("POST" if args.reprint else "GET", f"/items/{item_id}/label")
            if response.status_code >= 400:
                raise refusal(response)
            label = response.json()
            cards.append(LabelCard(item_id, items[item_id]["name"], label["code"]))
            versions.append(label["version"])
            fetched(number)
    pages = label_pages(cards, _progress_printer(len(cards), show, "drawing"))
    files = save_pages(pages, out)
    rows = [
        {
            "item_id": card.item_id,
            "name": card.name,
            "version": version,
            "page": index // PER_PAGE + 1,
            "cell": index % PER_PAGE + 1,
            "code": card.code,
        }
        for index, (card, version) in enumerate(zip(cards, versions, strict=True))
    ]
    if args.json:
        print(json.dumps({"files": [str(f) for f in files], "labels": rows}, indent=2))
        return
    print(table(rows, ["item_id", "name", "version", "page", "cell"]))
    print(f"{len(rows)} labels on {len(pages)} page(s): {', '.join(str(f) for f in files)}")


def register(sub: Any) -> None:
    """Add this module's commands to ``cs-admin``."""
    p = sub.add_parser(
        "labels",
        help="print an A4 label sheet (PDF or PNG) for a shelf or some items",
        description=cmd_labels.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--shelf", help="every item on this shelf (retired ones left out)")
    which.add_argument("--items", help="these items, comma-separated, in this order")
    p.add_argument("--out", required=True, help="sheet.pdf (all pages) or sheet.png (one per page)")
    p.add_argument("--reprint", action="store_true", help="new label versions; old labels stop")
    p.add_argument("--progress", action="store_true", help="progress on stderr even if not a TTY")
    p.set_defaults(func=cmd_labels)
