"""The outward shape of our QR codes, so a kiosk can tell a pass from a label offline.

Codes are signed by central and verified only there; this module knows the grammar,
not the key. All codes stay in QR alphanumeric mode: upper-case, digits and ``.-``.

    CS1.L.<kid>.<item>.<label version>.<mac>              item label
    CS1.P.<kid>.<pass id>.<member>.<expiry b36>.<mac>     member pass (single use)
    CS1.E.<kid>.<claim id>.<shelf>.<expiry b36>.<mac>     kiosk enrolment (single use)
    CS1.D.<kid>.<member>.<device>.<step b36>.<mac>        rotating pass from a member's phone
"""

from enum import StrEnum

CODE_PREFIX = "CS1"
MAX_CODE_LENGTH = 256
ALPHANUMERIC = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


class CodeKind(StrEnum):
    """What a scanned text claims to be."""

    LABEL = "L"
    PASS = "P"  # noqa: S105 - a code kind, not a password
    ENROL = "E"
    DEVICE_PASS = "D"  # noqa: S105 - a code kind, not a password


# Kinds a kiosk treats as a member pass (both open a checkout session).
PASS_KINDS = frozenset({CodeKind.PASS, CodeKind.DEVICE_PASS})


_FIELDS = {CodeKind.LABEL: 6, CodeKind.PASS: 7, CodeKind.ENROL: 7, CodeKind.DEVICE_PASS: 7}


def classify_code(text: str) -> CodeKind | None:
    """The kind a code claims by its shape, or None if it is not one of ours."""
    if len(text) > MAX_CODE_LENGTH or not ALPHANUMERIC.issuperset(text):
        return None
    parts = text.split(".")
    if len(parts) < 2 or parts[0] != CODE_PREFIX:
        return None
    try:
        kind = CodeKind(parts[1])
    except ValueError:
        return None
    return kind if len(parts) == _FIELDS[kind] else None
