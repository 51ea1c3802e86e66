"""Keeps QR codes out of logs: any code-shaped text becomes ``code#<hash>``."""

from __future__ import annotations

import hashlib
import logging
import re

from broker.codes import CODE_PREFIX

# Anything shaped like one of our codes, wherever it sits in a line of text.
_CODE_TEXT = re.compile(rf"{CODE_PREFIX}\.[LPE]\.[A-Z0-9.$%*+\-/:]+")


def redact(text: str) -> str:
    """``text`` with every code in it replaced by ``code#<hash>``."""
    if CODE_PREFIX not in text:
        return text
    return _CODE_TEXT.sub(lambda m: "code#" + hashlib.sha256(m[0].encode()).hexdigest()[:16], text)


class RedactCodes(logging.Filter):
    """A handler filter: replaces code text in a record's message and string fields.

    Code paths log fingerprints already; this keeps a slip (an exception quoting a
    payload, a debug line) from writing a usable pass into the journal.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Clean the record in place; always let it through."""
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and key != "msg":
                setattr(record, key, redact(value))
        return True
