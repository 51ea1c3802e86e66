"""Printed label formats: the tag a kiosk reads at arm's length and the small sheet of before."""

from __future__ import annotations

import numpy as np
import pytest

from broker.labels import (
    DEFAULT_FORMAT,
    DPI,
    FORMATS,
    QUIET_MODULES,
    SHEET,
    TAG,
    LabelCard,
    LabelFormat,
    label_image,
    label_pages,
    make_qr,
)
from central.tokens import KeyRing, TokenSigner
from hardware.zxing import ZxingDecoder

SIGNER = TokenSigner(KeyRing({"K1": b"k" * 32}, "K1"))
# The longest item id the id grammar allows and a many-times reprinted label: the
# largest symbol a label can need.
LONGEST = LabelCard("X" * 32, "Pressure washer", SIGNER.label("X" * 32, 123_456))
SHORT = LabelCard("DRILL-01", "Drill", SIGNER.label("DRILL-01", 1))


def module_mm(card: LabelCard, fmt: LabelFormat) -> float:
    return label_image(card, fmt)[1].module_px * 25.4 / DPI


def test_the_default_tag_has_modules_a_kiosk_reads_at_arms_length() -> None:
    # 1.69 mm: at 60 cm a Camera Module 3's scanning frame sees 1.85 px a module, as many
    # as the old 0.68 mm label had at 24 cm (docs/benchmarks.md, Decoders).
    assert DEFAULT_FORMAT is TAG
    assert module_mm(SHORT, DEFAULT_FORMAT) == pytest.approx(1.69, abs=0.01)
    assert module_mm(LONGEST, DEFAULT_FORMAT) >= 1.5
    # The small sheet is still there for small items, at the size it always had.
    assert module_mm(SHORT, SHEET) == pytest.approx(0.68, abs=0.01)


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
def test_every_cell_of_a_page_holds_its_whole_symbol_and_reads_alone(fmt: LabelFormat) -> None:
    cards = [
        LabelCard(f"TOOL-{n:03d}", f"Tool {n}", SIGNER.label(f"TOOL-{n:03d}", 1))
        for n in range(fmt.per_page + 1)
    ]
    pages = label_pages(cards, fmt=fmt)
    assert len(pages) == 2  # one more than a page holds starts the next
    page = np.asarray(pages[0], dtype=np.uint8)
    decoder = ZxingDecoder()
    for index, card in enumerate(cards[: fmt.per_page]):
        left, top, right, bottom = fmt.cell_box(index)
        assert decoder.decode(np.ascontiguousarray(page[top:bottom, left:right])) == [card.code]
    # The symbol and its quiet zone stay inside the cell, clear of the neighbours' ink.
    cell, qr = label_image(cards[0], fmt)
    side = int(make_qr(cards[0].code).symbol_size(scale=qr.module_px, border=QUIET_MODULES)[0])
    assert min(qr.left, qr.top) >= 0
    assert max(qr.left + side - cell.width, qr.top + side - cell.height) <= 0


def test_a_label_prints_the_same_code_in_either_format() -> None:
    # The format changes only the print: a label printed before keeps verifying.
    decoder = ZxingDecoder()
    for fmt in (TAG, SHEET):
        cell, _ = label_image(SHORT, fmt)
        assert decoder.decode(np.asarray(cell, dtype=np.uint8)) == [SHORT.code]
