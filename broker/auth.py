"""Broker accounts for Mosquitto's dynamic security plugin: users, roles, ACLs, commands.

The broker is the only place a kiosk's identity is checked, so these rules are the kiosks'
lane markings: a kiosk may publish scans and its status only under its own id, subscribe
to and read only its own verdicts, config and commands and the availability of its shelf;
only central users may publish verdicts, availability, config and commands. Everything
not granted is refused by the broker itself: a SUBSCRIBE outside the rules gets SUBACK
0x87 "not authorised" (shared subscriptions included, so no kiosk can join central's
share group), a PUBLISH gets PUBACK 0x87.

Central keeps the accounts in its database (passwords as PBKDF2-SHA512 hashes in
``mosquitto_passwd``'s format, which the plugin's JSON file stores as the same salt,
digest and iteration count) and drives the running broker through the plugin's
``$CONTROL/dynamic-security/v1`` commands; :func:`dynsec_config` renders the whole file
to seed a broker that has none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from broker import topics
from broker.errors import ContractError
from broker.ids import is_id

# mosquitto_passwd's format in Mosquitto 2.0: "$7$" = PBKDF2-HMAC-SHA512, 101 iterations,
# 12-byte salt, all base64. The dynamic security plugin uses the same KDF and salt size.
_SCHEME, _ITERATIONS, _SALT_BYTES = "7", 101, 12

DYNSEC_FILE = "dynamic-security.json"
CONTROL = "$CONTROL/dynamic-security/v1"
CONTROL_RESPONSE = f"{CONTROL}/response"
CONTROL_FILTER = "$CONTROL/dynamic-security/#"
CENTRAL_ROLE = "cs-central"
KIOSK_ROLE_PREFIX = "cs-kiosk-"

# What nobody may do unless a role grants it. Unsubscribing is harmless (it only drops
# what a client has), and a kiosk moving shelves unsubscribes from the old one.
DEFAULT_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": True,
}


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


def _acl(kind: str, topic: str) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "priority": 0, "allow": True}


def role_name(account: Account) -> str:
    """The one role an account holds: central's shared one, or the kiosk's own."""
    if account.role is Role.CENTRAL:
        return CENTRAL_ROLE
    return KIOSK_ROLE_PREFIX + _user(account)


def role_acls(account: Account) -> list[dict[str, Any]]:
    """The ACLs of :func:`role_name`, literal per kiosk (2.0's plugin has no ``%u``)."""
    if account.role is Role.CENTRAL:
        everything = f"{topics.ROOT}/#"
        return [
            _acl("publishClientSend", everything),
            _acl("publishClientReceive", everything),
            _acl("subscribePattern", everything),
            _acl("subscribePattern", f"$share/{topics.SHARE_GROUP}/{everything}"),
            # Central administers the kiosks' accounts through the plugin.
            _acl("publishClientSend", CONTROL),
            _acl("publishClientReceive", CONTROL_RESPONSE),
            _acl("subscribeLiteral", CONTROL_RESPONSE),
        ]
    kiosk = _user(account)
    reads = [topics.verdict(kiosk), topics.config(kiosk), topics.command(kiosk)]
    if account.shelf_id is not None:
        reads.append(topics.shelf_availability(account.shelf_id))
    return (
        [_acl("publishClientSend", t) for t in (topics.scan(kiosk), topics.status(kiosk))]
        + [_acl("subscribeLiteral", t) for t in reads]
        + [_acl("publishClientReceive", t) for t in reads]
    )


def _pbkdf2_fields(password_hash: str) -> dict[str, Any]:
    # "$7$<iterations>$<salt b64>$<digest b64>" → the plugin's three fields.
    parts = password_hash.split("$")
    try:
        ok = len(parts) == 5 and parts[1] == _SCHEME
        ok = ok and len(base64.b64decode(parts[3])) == _SALT_BYTES and int(parts[2]) > 0
    except ValueError:
        ok = False
    if not ok:
        raise ContractError("bad_account", "password hash is not PBKDF2-SHA512")
    return {"password": parts[4], "salt": parts[3], "iterations": int(parts[2])}


def dynsec_config(accounts: Iterable[Account]) -> dict[str, Any]:
    """The plugin's whole JSON file for ``accounts``: seeds a broker that has none."""
    accounts = sorted(accounts, key=lambda a: a.username)
    roles = {role_name(a): role_acls(a) for a in accounts}
    return {
        "defaultACLAccess": DEFAULT_ACCESS,
        "clients": [
            {
                "username": _user(a),
                "roles": [{"rolename": role_name(a)}],
                **_pbkdf2_fields(a.password_hash),
            }
            for a in accounts
        ],
        "groups": [],
        "roles": [{"rolename": name, "acls": acls} for name, acls in sorted(roles.items())],
    }


def write_seed(path: Path, accounts: Iterable[Account]) -> None:
    """Write :func:`dynsec_config` atomically, 0640 (hashes only, still no world read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(dynsec_config(accounts), indent=1) + "\n")
    tmp.chmod(0o640)
    tmp.replace(path)


# -- $CONTROL commands (see the plugin's README); each returns one command object --------


def create_client(account: Account, password: str) -> dict[str, Any]:
    """A new broker user holding its role (which must exist)."""
    return {
        "command": "createClient",
        "username": _user(account),
        "password": password,
        "roles": [{"rolename": role_name(account)}],
    }


def set_password(username: str, password: str) -> dict[str, Any]:
    """A new password; the broker drops whoever is logged in under the old one."""
    return {"command": "setClientPassword", "username": username, "password": password}


def set_roles(account: Account) -> dict[str, Any]:
    """Give a user exactly its role (the broker reconnects it)."""
    return {
        "command": "modifyClient",
        "username": _user(account),
        "roles": [{"rolename": role_name(account)}],
    }


def delete_client(username: str) -> dict[str, Any]:
    """Remove a user; the broker disconnects it at once."""
    return {"command": "deleteClient", "username": username}


def disable_client(username: str) -> dict[str, Any]:
    """Refuse a user's logins and disconnect it, keeping its password and role."""
    return {"command": "disableClient", "username": username}


def enable_client(username: str) -> dict[str, Any]:
    """Let a disabled user log in again."""
    return {"command": "enableClient", "username": username}


# A kiosk central shut out for a while carries its deadline in the broker itself (the
# client's text description), so whichever instance reconciles next lets it back in,
# even if the instance that shut it out has died since. A user an operator disabled by
# hand carries no such note and is never re-enabled by central.
QUARANTINE_NOTE = "quarantined by central until "


def quarantine_client(username: str, until: datetime) -> list[dict[str, Any]]:
    """Shut a kiosk's login out until ``until`` (dropping its connection at once)."""
    return [
        {
            "command": "modifyClient",
            "username": username,
            "textdescription": f"{QUARANTINE_NOTE}{until.isoformat()}",
        },
        disable_client(username),
    ]


def release_client(username: str) -> list[dict[str, Any]]:
    """Let a quarantined kiosk log in again and clear its note."""
    return [
        enable_client(username),
        {"command": "modifyClient", "username": username, "textdescription": ""},
    ]


def quarantined_until(client: dict[str, Any]) -> datetime | None:
    """When central's quarantine of a listed client ends; None if central set none."""
    note = str(client.get("textdescription") or "")
    if not client.get("disabled") or not note.startswith(QUARANTINE_NOTE):
        return None
    try:
        return datetime.fromisoformat(note.removeprefix(QUARANTINE_NOTE))
    except ValueError:
        return None


def create_role(name: str, acls: list[dict[str, Any]]) -> dict[str, Any]:
    """A new role with its ACLs."""
    return {"command": "createRole", "rolename": name, "acls": acls}


def modify_role(name: str, acls: list[dict[str, Any]]) -> dict[str, Any]:
    """Replace a role's ACLs; applies to the next message, no reconnect."""
    return {"command": "modifyRole", "rolename": name, "acls": acls}


def delete_role(name: str) -> dict[str, Any]:
    """Remove a role nobody holds any more."""
    return {"command": "deleteRole", "rolename": name}


def set_default_access() -> dict[str, Any]:
    """Deny by default whatever no role grants."""
    return {
        "command": "setDefaultACLAccess",
        "acls": [{"acltype": k, "allow": v} for k, v in DEFAULT_ACCESS.items()],
    }


def get_default_access() -> dict[str, Any]:
    """What the broker does where no role says."""
    return {"command": "getDefaultACLAccess"}


def list_clients() -> dict[str, Any]:
    """Every user with its roles and whether it is disabled."""
    return {"command": "listClients", "verbose": True, "count": -1, "offset": 0}


def list_roles() -> dict[str, Any]:
    """Every role with its ACLs."""
    return {"command": "listRoles", "verbose": True, "count": -1, "offset": 0}
