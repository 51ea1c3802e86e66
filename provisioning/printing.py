"""Printable codes: A4 label sheets (PDF or PNG) and member pass cards (PNG or SVG)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from PIL import Image

from broker.labels import (
    DEFAULT_FORMAT,
    DPI,
    FORMATS,
    PASS_MODULE_PX,
    PASS_WIDTH,
    QUIET_MODULES,
    LabelCard,
    LabelTooBigError,
    label_pages,
    make_qr,
    pass_image,
    pass_lines,
    pdf_bytes,
)
from provisioning.api_client import call, open_client, refusal
from provisioning.errors import UsageError
from provisioning.output import table


def save_pages(pages: Sequence[Image.Image], out: Path) -> list[Path]:
    """Write the pages: one multi-page PDF, or one PNG per page (``name-2.png``, …)."""
    suffix = out.suffix.lower()
    if suffix == ".pdf":
        # Bilevel pages go into the PDF losslessly (CCITT G4); greyscale ones would be
        # JPEG-compressed, blurring module edges.
        out.write_bytes(pdf_bytes(pages))
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


def pass_svg(code: str, member_name: str, member_id: str, expires_at: datetime) -> str:
    """The pass card as SVG: one square per dark module (exact at any print size)."""
    qr = make_qr(code)
    module = PASS_MODULE_PX
    side = int(qr.symbol_size(scale=module, border=QUIET_MODULES)[0])
    width = max(PASS_WIDTH, side + 40)
    lines = pass_lines(member_name, member_id, expires_at)
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
    """Print A4 sheets of item labels for a shelf or a list of items.

    --format tag (the default) prints 12 labels a page with 1.7 mm modules, which kiosks
    read at arm's length; --format sheet prints 24 a page with 0.68 mm modules for items
    too small for a tag, which must be held close (within about 25 cm). Both verify alike:
    the format changes only the print, so labels printed in either keep working.

    With --reprint every label gets a new version first: the labels printed before stop
    working (kiosks answer REVOKED), so stick the new ones on straight away.
    """
    out = Path(args.out)
    fmt = FORMATS[args.format]
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
    try:
        pages = label_pages(cards, _progress_printer(len(cards), show, "drawing"), fmt)
    except LabelTooBigError as exc:
        raise UsageError(str(exc)) from exc
    files = save_pages(pages, out)
    rows = [
        {
            "item_id": card.item_id,
            "name": card.name,
            "version": version,
            "page": index // fmt.per_page + 1,
            "cell": index % fmt.per_page + 1,
            "code": card.code,
        }
        for index, (card, version) in enumerate(zip(cards, versions, strict=True))
    ]
    if args.json:
        print(json.dumps({"files": [str(f) for f in files], "labels": rows}, indent=2))
        return
    print(table(rows, ["item_id", "name", "version", "page", "cell"]))
    print(
        f"{len(rows)} labels on {len(pages)} page(s), {fmt.name} format: "
        f"{', '.join(str(f) for f in files)}"
    )


def register(sub: Any) -> None:
    """Add this module's commands to ``cs-admin``."""
    p = sub.add_parser(
        "labels",
        help="print A4 label sheets (PDF or PNG) for a shelf or some items",
        description=cmd_labels.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--shelf", help="every item on this shelf (retired ones left out)")
    which.add_argument("--items", help="these items, comma-separated, in this order")
    p.add_argument("--out", required=True, help="sheet.pdf (all pages) or sheet.png (one per page)")
    p.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default=DEFAULT_FORMAT.name,
        help="; ".join(f"{f.name}: {f.use}" for f in FORMATS.values()),
    )
    p.add_argument("--reprint", action="store_true", help="new label versions; old labels stop")
    p.add_argument("--progress", action="store_true", help="progress on stderr even if not a TTY")
    p.set_defaults(func=cmd_labels)
