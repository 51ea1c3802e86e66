"""Signing and verifying the QR codes central issues: item labels, member passes, enrolments.

The text stays in QR alphanumeric mode (see :mod:`broker.codes` for the grammar). The MAC
is HMAC-SHA256 over everything before it, truncated to 120 bits and written in base32,
under a key named by its key id so keys can rotate: a key retired by a rotation still
verifies for a grace period, then its codes are refused BAD_SIGNATURE (see
:mod:`central.keys`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from broker.codes import CODE_PREFIX, CodeKind, classify_code
from broker.ids import is_id
from broker.messages import Reason
from central.errors import ConfigError

MAC_BYTES = 15  # 120 bits: exactly 24 base32 characters, no padding
MIN_KEY_BYTES = 32
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class Label:
    """A verified item label."""

    item_id: str
    version: int


@dataclass(frozen=True, slots=True)
class Pass:
    """A verified (not yet consumed) member pass."""

    pass_id: str
    member_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A verified (not yet claimed) kiosk enrolment code."""

    claim_id: str
    shelf_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class DevicePass(Pass):
    """A verified rotating pass from a member's phone: still a :class:`Pass` to the ledger.

    Its ``pass_id`` names the device and the time step, so each displayed code is one
    single-use pass; the store writes its ``qr_codes`` row when the code is first decided
    (see :meth:`central.web.store.MembersData.materialise`).
    """

    device_id: str = ""
    step: int = 0


Token = Label | Pass | Enrolment

# A phone shows a fresh device code every STEP_S seconds; central accepts one for
# DEVICE_PASS_TTL_S after its step begins (a screenshot is refused EXPIRED within a minute)
# and tolerates a phone clock this far ahead.
STEP_S = 30
DEVICE_PASS_TTL_S = 60
DEVICE_SKEW_STEPS = 1
MAX_DEVICE_ID = 20


def _b36(n: int) -> str:
    if n < 0:
        raise ValueError("expiry before 1970")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


def _from_b36(text: str) -> int:
    if not text or len(text) > 8 or any(c not in _B36 for c in text):
        raise ValueError(text)
    return int(text, 36)


def new_id(nbytes: int = 10) -> str:
    """A random id in base32 (``nbytes`` of entropy), safe in topics and codes."""
    return base64.b32encode(secrets.token_bytes(nbytes)).decode().rstrip("=")


def fingerprint(code: str) -> str:
    """A short hash of a code for logs and audit: never log a code in clear."""
    return hashlib.sha256(code.encode("utf-8", "replace")).hexdigest()[:16]


class KeyRing:
    """HMAC keys by key id, with one active key for signing and retired ones in grace."""

    def __init__(
        self,
        keys: Mapping[str, bytes],
        active: str,
        *,
        retired: Mapping[str, datetime] | None = None,
        grace: timedelta = timedelta(days=1),
    ) -> None:
        if active not in keys:
            raise ConfigError(f"active key id {active!r} is not in the key ring")
        for kid, key in keys.items():
            if not is_id(kid) or len(kid) > 4:
                raise ConfigError(f"key id {kid!r} must be 1-4 characters A-Z 0-9")
            if len(key) < MIN_KEY_BYTES:
                raise ConfigError(f"key {kid!r} is shorter than {MIN_KEY_BYTES} bytes")
        # One keyed HMAC per key, copied for each MAC: hmac.digest() looks SHA-256 up in
        # OpenSSL's provider store on every call, under a lock that central's writer
        # thread, hashing audit rows, contends for; a copy reuses the keyed state (1.0 µs
        # against 4.4 µs beside a hashing thread; central's CPU per verdict -8 %).
        self._keys = {kid: hmac.new(key, digestmod=hashlib.sha256) for kid, key in keys.items()}
        self.active = active
        self.retired = dict(retired or {})
        self.grace = grace

    def current(self) -> KeyRing:
        """This ring (a fixed ring never changes; :class:`central.keys.KeyFile` reloads)."""
        return self

    def trusted(self, kid: str, now: datetime) -> bool:
        """Whether codes under ``kid`` still verify at ``now`` (active, or retired in grace)."""
        retired_at = self.retired.get(kid)
        return kid in self._keys and (retired_at is None or now < retired_at + self.grace)

    def mac(self, kid: str, body: str) -> str | None:
        """The MAC of ``body`` under ``kid``, or None if the key id is unknown."""
        keyed = self._keys.get(kid)
        if keyed is None:
            return None
        mac = keyed.copy()
        mac.update(body.encode())
        return base64.b32encode(mac.digest()[:MAC_BYTES]).decode()


class RingSource(Protocol):
    """Where a signer gets the key ring in force now."""

    def current(self) -> KeyRing:
        """The key ring to sign and verify with."""


class TokenSigner:
    """Issues and verifies codes with a :class:`KeyRing` (or a source that reloads one)."""

    def __init__(self, ring: RingSource) -> None:
        self._source = ring

    def _sign(self, kind: CodeKind, *fields: str) -> str:
        ring = self._source.current()
        body = ".".join((CODE_PREFIX, kind.value, ring.active, *fields))
        mac = ring.mac(ring.active, body)
        assert mac is not None  # the active key is always in the ring
        return f"{body}.{mac}"

    def label(self, item_id: str, version: int) -> str:
        """The code printed on an item's label."""
        _require_id(item_id)
        if version < 0:
            raise ValueError(f"label version {version} is negative")
        return self._sign(CodeKind.LABEL, item_id, str(version))

    def member_pass(self, pass_id: str, member_id: str, expires_at: datetime) -> str:
        """A single-use pass for ``member_id`` valid until ``expires_at``."""
        _require_id(pass_id)
        _require_id(member_id)
        return self._sign(CodeKind.PASS, pass_id, member_id, _b36(int(expires_at.timestamp())))

    def enrolment(self, claim_id: str, shelf_id: str, expires_at: datetime) -> str:
        """A single-use code that lets a fresh kiosk claim its place at ``shelf_id``."""
        _require_id(claim_id)
        _require_id(shelf_id)
        return self._sign(CodeKind.ENROL, claim_id, shelf_id, _b36(int(expires_at.timestamp())))

    def active_kid(self) -> str:
        """The key id new codes are signed under."""
        return self._source.current().active

    def device_secret(self, member_id: str, device_id: str, kid: str | None = None) -> bytes:
        """The secret a member's phone derives its rotating passes from.

        Derived from the key ring rather than stored: central recomputes it for each scan
        without a database read, and a stolen database alone forges nothing. Revocation is
        a row (``member_devices.revoked_at``) checked when the code is consumed.
        """
        ring = self._source.current()
        kid = kid or ring.active
        key = ring.mac(kid, f"{CODE_PREFIX}.D.{member_id}.{device_id}")
        if key is None:
            raise ValueError(f"unknown key id {kid!r}")
        return hashlib.sha256(("device-secret." + key).encode()).digest()

    def device_pass(self, member_id: str, device_id: str, at: datetime) -> str:
        """The code a phone shows at ``at`` (what the page's JavaScript computes)."""
        _require_id(member_id)
        _require_id(device_id)
        kid = self._source.current().active
        step = int(at.timestamp()) // STEP_S
        body = ".".join((CODE_PREFIX, CodeKind.DEVICE_PASS.value, kid, member_id, device_id))
        body = f"{body}.{_b36(step)}"
        return f"{body}.{device_mac(self.device_secret(member_id, device_id, kid), body)}"

    def verify(self, code: str, now: datetime) -> Token | Reason:
        """The token ``code`` carries, or the reason it is refused.

        Checks, in order: shape (MALFORMED / UNKNOWN_CODE), key id and MAC
        (BAD_SIGNATURE, compared in constant time; a key retired longer ago than the grace
        period counts as unknown), expiry (EXPIRED). Single use and label versions are the
        store's business.
        """
        kind = classify_code(code)
        if kind is None:
            return Reason.UNKNOWN_CODE
        ring = self._source.current()
        body, _, mac = code.rpartition(".")
        fields = body.split(".")
        if kind is CodeKind.DEVICE_PASS:
            return self._verify_device(ring, body, fields, mac, now)
        expected = ring.mac(fields[2], body)
        if expected is None or not hmac.compare_digest(expected, mac):
            return Reason.BAD_SIGNATURE
        if not ring.trusted(fields[2], now):
            # BAD_SIGNATURE, not REVOKED: a retired key may be the one that leaked, so a
            # MAC under it proves nothing, and the answer must not tell a forger that it
            # guessed the old key right.
            return Reason.BAD_SIGNATURE
        try:
            return _parse(kind, fields[3:], now)
        except ValueError:
            # Signed by us yet unparsable: only a signing bug gets here.
            return Reason.MALFORMED

    def _verify_device(
        self, ring: KeyRing, body: str, fields: list[str], mac: str, now: datetime
    ) -> Token | Reason:
        kid, member_id, device_id, step_text = fields[2:]
        # Device ids are minted 16 characters long; the cap keeps the pass id a valid id.
        shaped = is_id(member_id) and is_id(device_id) and len(device_id) <= MAX_DEVICE_ID
        if not shaped or ring.mac(kid, body) is None:
            return Reason.BAD_SIGNATURE
        expected = device_mac(self.device_secret(member_id, device_id, kid), body)
        if not hmac.compare_digest(expected, mac) or not ring.trusted(kid, now):
            return Reason.BAD_SIGNATURE
        try:
            step = _from_b36(step_text)
        except ValueError:
            return Reason.MALFORMED
        begins = step * STEP_S
        if begins > now.timestamp() + DEVICE_SKEW_STEPS * STEP_S:
            return Reason.EXPIRED  # from a phone clock far ahead: not valid yet, never kept
        expires_at = datetime.fromtimestamp(begins + DEVICE_PASS_TTL_S, UTC)
        if now >= expires_at:
            return Reason.EXPIRED
        pass_id = f"D{device_id}-{step_text}"
        return DevicePass(pass_id, member_id, expires_at, device_id=device_id, step=step)


def device_mac(secret: bytes, body: str) -> str:
    """The MAC of a device code: HMAC-SHA256, 120 bits in base32 (WebCrypto computes it too)."""
    digest = hmac.new(secret, body.encode(), hashlib.sha256).digest()[:MAC_BYTES]
    return base64.b32encode(digest).decode()


def _require_id(value: str) -> None:
    if not is_id(value):
        raise ValueError(f"{value!r} is not a valid id")


def _parse(kind: CodeKind, fields: list[str], now: datetime) -> Token | Reason:
    if kind is CodeKind.LABEL:
        item_id, version = fields
        if not is_id(item_id) or not version.isdigit():
            raise ValueError(version)
        return Label(item_id, int(version))
    ident, owner, expiry = fields
    if not is_id(ident) or not is_id(owner):
        raise ValueError(ident)
    expires_at = datetime.fromtimestamp(_from_b36(expiry), UTC)
    if now >= expires_at:
        return Reason.EXPIRED
    if kind is CodeKind.PASS:
        return Pass(ident, owner, expires_at)
    return Enrolment(ident, owner, expires_at)
