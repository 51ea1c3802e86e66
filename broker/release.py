"""The release contract: the bytes a release key signs, and the check every kiosk runs.

An admin signs ``signed_bytes(version, sha256)`` with the fleet's Ed25519 release key
(offline, ``cs-admin release publish``); central stores and serves the artifact but holds
no key that could sign one; a kiosk installs an artifact only if its SHA-256 is the one
signed and the signature verifies under a key in its own trust list. The version is inside
the signature, so a signed artifact cannot be re-offered under another version's name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.messages import UpdateRefusal

_DOMAIN = b"communityshare-kiosk-release/1\n"


def signed_bytes(version: str, sha256: str) -> bytes:
    """What a release key signs for one artifact."""
    return _DOMAIN + f"{version}\n{sha256}\n".encode()


def public_key(text: str) -> Ed25519PublicKey:
    """A trusted key from its text form (base64 of the 32 raw bytes); ValueError if bad."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error as exc:
        raise ValueError("a release key is base64 of 32 bytes") from exc
    if len(raw) != 32:
        raise ValueError("a release key is base64 of 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def check_artifact(
    data: bytes,
    *,
    version: str,
    sha256: str,
    signature: str,
    trusted: Sequence[Ed25519PublicKey],
) -> UpdateRefusal | None:
    """None if ``data`` is the release signed as ``version``/``sha256``; else why not."""
    if not trusted:
        return UpdateRefusal.NO_TRUSTED_KEY
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), sha256):
        return UpdateRefusal.BAD_HASH
    try:
        raw = base64.b64decode(signature, validate=True)
    except binascii.Error:
        return UpdateRefusal.BAD_SIGNATURE
    message = signed_bytes(version, sha256)
    for key in trusted:
        try:
            key.verify(raw, message)
        except InvalidSignature:
            continue
        return None
    return UpdateRefusal.BAD_SIGNATURE
