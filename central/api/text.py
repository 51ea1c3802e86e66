"""The admin API's text types: no control characters, no bidirectional overrides (a document's
text may break lines)."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

# C0 and C1 controls (NUL among them: PostgreSQL refuses it in text), DEL, and the Unicode
# format characters that reorder or hide text on screen (bidi embeddings, overrides and
# isolates, marks). A tab or newline has no place in a name or a reason either.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def has_forbidden(text: str) -> bool:
    """Whether ``text`` holds a control character or a bidirectional control."""
    return _FORBIDDEN.search(text) is not None


def _clean(text: str) -> str:
    if has_forbidden(text):
        raise ValueError("must not contain control characters or bidirectional overrides")
    # Composed form, so two spellings of one name are one name.
    return unicodedata.normalize("NFC", text)


Text = Annotated[str, AfterValidator(_clean)]
"""A ``str`` for names, reasons and codes; refused (422) with a control character in it."""


def _clean_document(text: str) -> str:
    # Line breaks are the document's own; everything else is refused as in Text.
    if has_forbidden(text.replace("\r\n", "\n").replace("\n", " ")):
        raise ValueError("must not contain control characters other than line breaks")
    return unicodedata.normalize("NFC", text)


Document = Annotated[str, AfterValidator(_clean_document)]
"""A ``str`` of several lines (a lending agreement); other controls refused (422)."""
