"""Mosquitto's password and ACL files for the fleet: one user per kiosk, rules by username.

The broker is the only place a kiosk's identity is checked, so these files are the
kiosks' lane markings: a kiosk may publish scans and its status only under its own id,
read only its own verdicts, config and commands and the availability of its shelf; only
central users may publish verdicts, availability, config and commands.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from broker import topics
from broker.errors import ContractError
from broker.ids import is_id

# mosquitto_passwd's format in Mosquitto 2.0: "$7$" = PBKDF2-HMAC-SHA512, 101 iterations,
# 12-byte salt, all base64. The broker checks every CONNECT against it.
_SCHEME, _ITERATIONS, _SALT_BYTES = "7", 101, 12

PASSWD_FILE, ACL_FILE = "passwd", "acl"

# A kiosk's own topics, by pattern on its username (%u): the same rules for every kiosk.
KIOSK_WRITES = (f"{topics.ROOT}/kiosk/%u/scan", f"{topics.ROOT}/kiosk/%u/status")
KIOSK_READS = (
    f"{topics.ROOT}/kiosk/%u/verdict",
    f"{topics.ROOT}/kiosk/%u/config",
    f"{topics.ROOT}/kiosk/%u/command",
)


class Role(StrEnum):
    """What a broker user is."""

    KIOSK = "kiosk"
    CENTRAL = "central"


@dataclass(frozen=True, slots=True)
class Account:
    """One broker user: its name, role, hashed password and (for a kiosk) its shelf."""

    username: str
    role: Role
    password_hash: str
    shelf_id: str | None = None


def new_password() -> str:
    """A fresh broker password: 160 random bits, safe in an env file."""
    return secrets.token_urlsafe(20)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The ``mosquitto_passwd`` line value for ``password``."""
    salt = salt if salt is not None else os.urandom(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _ITERATIONS)
    b64 = base64.b64encode
    return f"${_SCHEME}${_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``hash_password`` value (constant time)."""
    try:
        _, scheme, iterations, salt, digest = hashed.split("$")
        if scheme != _SCHEME:
            return False
        got = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt), int(iterations)
        )
        return hmac.compare_digest(got, base64.b64decode(digest))
    except ValueError:
        return False


def _user(account: Account) -> str:
    if not is_id(account.username):
        raise ContractError("bad_account", f"broker user {account.username!r} is not a valid id")
    return account.username


def password_file(accounts: Iterable[Account]) -> str:
    """The text of Mosquitto's ``password_file``: kiosks and centrals, nobody else."""
    return "".join(f"{_user(a)}:{a.password_hash}\n" for a in accounts)


def acl_file(accounts: Iterable[Account]) -> str:
    """The text of Mosquitto's ``acl_file``.

    Anything not granted is refused: a publish outside the rules is dropped (PUBACK "not
    authorised") and a subscription outside them delivers nothing.
    """
    lines = ["# Written by central from its broker accounts; edits are overwritten.", ""]
    lines += ["# Every kiosk: only its own scan/status out, its own verdict/config/command in."]
    lines += [f"pattern write {topic}" for topic in KIOSK_WRITES]
    lines += [f"pattern read {topic}" for topic in KIOSK_READS]
    for account in sorted(accounts, key=lambda a: a.username):
        lines.append("")
        lines.append(f"user {_user(account)}")
        if account.role is Role.CENTRAL:
            lines.append(f"topic readwrite {topics.ROOT}/#")
        elif account.shelf_id is not None:
            lines.append(f"topic read {topics.shelf_availability(account.shelf_id)}")
    return "\n".join(lines) + "\n"


def write_files(directory: Path, accounts: Iterable[Account]) -> None:
    """Write both files atomically (a reload never reads half a file); 0640, no world read."""
    accounts = list(accounts)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in ((PASSWD_FILE, password_file(accounts)), (ACL_FILE, acl_file(accounts))):
        tmp = directory / f".{name}.tmp"
        tmp.write_text(text)
        tmp.chmod(0o640)
        tmp.replace(directory / name)
