"""Text for people's terminals: data from central shown, never obeyed, by the terminal."""

from __future__ import annotations

import re

# C0 and C1 controls and DEL (escape sequences, carriage returns that overwrite a line,
# bells) and the Unicode controls that reorder or hide text (bidi embeddings, overrides,
# isolates, marks): a name holding any of them could repaint an admin's screen or show
# one id while meaning another.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_NEWLINES = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object) -> str:
    """``text`` with every control character shown as an escape (one line, for a cell)."""
    return _UNSAFE.sub(_escape, str(text))


def safe_lines(text: object) -> str:
    """Like :func:`safe`, keeping line breaks (for messages of several lines)."""
    return _UNSAFE_KEEP_NEWLINES.sub(_escape, str(text))
