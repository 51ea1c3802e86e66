"""Text for people's terminals: data from central shown, never obeyed, by the terminal."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from typing import Any

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


def _cell(value: Any) -> str:
    # Names, reasons and kiosk reports come from data: shown escaped, never obeyed.
    return "" if value is None else safe(value)


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as aligned columns under upper-case headings, every cell escaped."""
    widths = {c: max([len(c)] + [len(_cell(r.get(c))) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(_cell(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def show(args: argparse.Namespace, data: Any, columns: Sequence[str] | None = None) -> None:
    """Print central's answer: JSON with ``--json`` (or no columns given), else a table."""
    if args.json or columns is None:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(table(data if isinstance(data, list) else [data], columns))
