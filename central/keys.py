"""The key ring on disk: created once with tight permissions, rotated, never logged or sent out.

``keys.json`` is ``{"active": kid, "keys": {kid: base64}, "retired": {kid: iso time}}``.
A rotation adds a key, makes it active and records when the previous one was retired;
codes under a retired key verify until ``retired + grace``. Every central instance that
shares the file (one host, one data dir) reloads it when it changes, checked at most once
a second, so a rotation made through any instance reaches all of them; the retirement
times are in the file, so they all apply the same grace.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from central.errors import ConfigError
from central.tokens import KeyRing

_KID = re.compile(r"^K(\d{1,3})$")


@dataclass(frozen=True, slots=True)
class Rotation:
    """What a rotation did (key ids only: never key material)."""

    active: str
    previous: str
    previous_valid_until: datetime


def _new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically with a 0600 file, so a crash never leaves half a ring."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the ring, so two instances rotating at once cannot clobber."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f"{path.name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"key ring {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"key ring {path} is not a JSON object")
    return data


def _ring(path: Path, data: dict[str, Any], grace: timedelta) -> KeyRing:
    try:
        keys = {kid: base64.b64decode(value) for kid, value in data["keys"].items()}
        retired = {kid: datetime.fromisoformat(at) for kid, at in data.get("retired", {}).items()}
        return KeyRing(keys, data["active"], retired=retired, grace=grace)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"key ring {path} is unreadable: {exc}") from exc


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"active": "K1", "keys": {"K1": _new_key()}, "retired": {}}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another instance made it first
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)


def load_key_ring(path: Path, *, create: bool, grace: timedelta = timedelta(days=1)) -> KeyRing:
    """Read the ring; create one if allowed and absent."""
    if not path.exists():
        if not create:
            raise ConfigError(f"no key ring at {path}")
        _create(path)
    return _ring(path, _read(path), grace)


def _next_kid(keys: dict[str, Any]) -> str:
    used = [int(m[1]) for kid in keys if (m := _KID.match(kid))]
    number = max(used, default=0) + 1
    if number > 999:
        raise ConfigError("key ids K1..K999 are used up; prune keys.json by hand")
    return f"K{number}"


def rotate_key_ring(path: Path, now: datetime, grace: timedelta) -> Rotation:
    """Add a key and make it active; the previous one verifies until ``now + grace``.

    Keys whose grace ended before ``now`` are dropped from the file: they verify nothing,
    and a key that is not on disk cannot leak.
    """
    with _locked(path):
        data = _read(path)
        _ring(path, data, grace)  # refuse to rotate a ring that does not load
        keys: dict[str, str] = dict(data["keys"])
        retired: dict[str, str] = dict(data.get("retired", {}))
        for kid, at in list(retired.items()):
            if datetime.fromisoformat(at) + grace <= now:
                del retired[kid]
                keys.pop(kid, None)
        previous = str(data["active"])
        active = _next_kid(keys)
        keys[active] = _new_key()
        retired[previous] = now.isoformat()
        _write_private(path, {"active": active, "keys": keys, "retired": retired})
    return Rotation(active, previous, now + grace)


class KeyFile:
    """The ring in ``keys.json``, reloaded when the file changes (a :class:`RingSource`)."""

    def __init__(
        self,
        path: Path,
        *,
        create: bool,
        grace: timedelta = timedelta(days=1),
        check_every_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.grace = grace
        self._check_every_s = check_every_s
        self._monotonic = monotonic
        self._ring = load_key_ring(path, create=create, grace=grace)
        self._stamp = self._stat()
        self._checked = monotonic()

    def _stat(self) -> tuple[int, int, int]:
        st = self.path.stat()
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def current(self) -> KeyRing:
        """The ring in force; re-read if the file changed since the last look."""
        now = self._monotonic()
        if now - self._checked >= self._check_every_s:
            self._checked = now
            self.reload()
        return self._ring

    def reload(self) -> None:
        """Re-read the file now if it changed (a rotation by this or another instance)."""
        try:
            stamp = self._stat()
        except OSError:
            return  # keep verifying with the ring we have rather than refuse every scan
        if stamp != self._stamp:
            self._ring = _ring(self.path, _read(self.path), self.grace)
            self._stamp = stamp

    def rotate(self, now: datetime) -> Rotation:
        """Rotate the ring on disk and start using it at once."""
        rotation = rotate_key_ring(self.path, now, self.grace)
        self.reload()
        return rotation

    def describe(self) -> list[dict[str, Any]]:
        """Key ids, which is active, and when retired ones stop verifying: no key material."""
        ring = self.current()
        rows: list[dict[str, Any]] = []
        for kid in [*sorted(ring.retired), ring.active]:
            retired_at = ring.retired.get(kid)
            rows.append(
                {
                    "key_id": kid,
                    "active": kid == ring.active,
                    "retired_at": retired_at,
                    "valid_until": None if retired_at is None else retired_at + ring.grace,
                }
            )
        return rows


def load_admin_token(path: Path, *, create: bool) -> str:
    """The admin API bearer token kept beside the key ring."""
    if not path.exists():
        if not create:
            raise ConfigError(f"no admin token at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return path.read_text().strip()
