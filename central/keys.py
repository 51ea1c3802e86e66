"""The key ring on disk: created once with tight permissions, never logged or sent out."""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from central.errors import ConfigError
from central.tokens import KeyRing


def load_key_ring(path: Path, *, create: bool) -> KeyRing:
    """Read ``{"active": kid, "keys": {kid: base64}}``; create one if allowed and absent."""
    if not path.exists():
        if not create:
            raise ConfigError(f"no key ring at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"active": "K1", "keys": {"K1": base64.b64encode(secrets.token_bytes(32)).decode()}}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
    try:
        data = json.loads(path.read_text())
        keys = {kid: base64.b64decode(value) for kid, value in data["keys"].items()}
        return KeyRing(keys, data["active"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"key ring {path} is unreadable: {exc}") from exc


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
