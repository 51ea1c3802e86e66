"""``cs-admin release`` and ``cs-admin rollout``: sign and publish kiosk releases, roll them out.

The release key never leaves the admin's machine: ``release keygen`` writes it (0600)
and prints the public half that goes into every kiosk's ``CS_KIOSK_UPDATE_KEYS`` (and
central's ``CS_CENTRAL_RELEASE_KEYS``); ``release publish`` signs locally and uploads the
artifact with its signature.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.release import signed_bytes
from provisioning.api_client import call
from provisioning.errors import UsageError
from provisioning.output import show, table
from provisioning.rollout import _actor, _ids, _why

_WHEEL = re.compile(r"^communityshare_kiosks-(?P<version>[0-9][0-9A-Za-z.+~-]*)-py3-none-any\.whl$")
_ROLLOUT_COLUMNS = ("rollout_id", "version", "state", "percent", "kiosks", "halt_reason")


def public_text(key: Ed25519PrivateKey) -> str:
    """The public key as kiosks' settings take it: base64 of its 32 raw bytes."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign(key: Ed25519PrivateKey, version: str, artifact: bytes) -> str:
    """The release signature for ``artifact`` as ``version``."""
    digest = hashlib.sha256(artifact).hexdigest()
    return base64.b64encode(key.sign(signed_bytes(version, digest))).decode()


def load_key(path: Path) -> Ed25519PrivateKey:
    """The release key from its PEM file."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{path} is not an Ed25519 release key")
    return key


def cmd_keygen(args: argparse.Namespace) -> None:
    """Create the fleet's release key (keep it offline); print its public half."""
    path = Path(args.out)
    if path.exists():
        raise UsageError(f"{path} exists: a new key would orphan every kiosk trusting it")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    show(args, {"key_file": str(path), "public_key": public_text(key)}, ("public_key",))


def cmd_publish(args: argparse.Namespace) -> None:
    """Sign a kiosk wheel with the release key and upload it to central."""
    artifact_path = Path(args.artifact)
    match = _WHEEL.match(artifact_path.name)
    if match is None:
        raise UsageError(
            f"{artifact_path.name}: expected communityshare_kiosks-<version>-py3-none-any.whl"
        )
    version = match["version"]
    artifact = artifact_path.read_bytes()
    body = {
        "version": version,
        "artifact": base64.b64encode(artifact).decode(),
        "signature": sign(load_key(Path(args.key)), version, artifact),
        "notes": args.notes or "",
        "actor": _actor(args),
    }
    release = call(args, "POST", "/releases", body)
    show(args, release, ("version", "sha256", "size"))


def cmd_releases(args: argparse.Namespace) -> None:
    """List published releases."""
    show(args, call(args, "GET", "/releases"), ("version", "size", "created_at"))


def _rollout_row(rollout: dict[str, Any]) -> dict[str, Any]:
    return {**rollout, "kiosks": ",".join(rollout.get("kiosks") or []) or None}


def cmd_start(args: argparse.Namespace) -> None:
    """Roll a release out to an allow-list and/or a percentage of the fleet."""
    body: dict[str, Any] = {
        "version": args.version,
        "percent": args.percent,
        "kiosks": _ids(args.kiosks),
        "abort_percent": args.abort_percent,
        "abort_min": args.abort_min,
        "reason": args.reason,
        "actor": _actor(args),
    }
    if not body["percent"] and not body["kiosks"]:
        raise UsageError("a rollout needs --percent N or --kiosks A,B")
    rollout = call(args, "POST", "/rollouts", body)
    show(args, _rollout_row(rollout), _ROLLOUT_COLUMNS)


def cmd_list(args: argparse.Namespace) -> None:
    """List rollouts, newest first."""
    rollouts = [_rollout_row(r) for r in call(args, "GET", "/rollouts")]
    show(args, rollouts, _ROLLOUT_COLUMNS)


def cmd_show(args: argparse.Namespace) -> None:
    """Show a rollout and where each of its kiosks stands."""
    rollout = call(args, "GET", f"/rollouts/{args.rollout_id}")
    if args.json:
        show(args, rollout)
        return
    show(args, _rollout_row(rollout), _ROLLOUT_COLUMNS)
    print(table(rollout["progress"], ("kiosk_id", "state", "reason", "offers")))


def _changer(action: str) -> Any:
    def change(args: argparse.Namespace) -> None:
        body = {"reason": args.reason, "actor": _actor(args)}
        rollout = call(args, "POST", f"/rollouts/{args.rollout_id}/{action}", body)
        show(args, _rollout_row(rollout), _ROLLOUT_COLUMNS)

    change.__doc__ = f"{action.capitalize()} a rollout."
    return change


def register(sub: Any) -> None:
    """Add ``release`` and ``rollout`` to ``cs-admin``'s subcommands."""
    release = sub.add_parser("release", help="kiosk releases: the key, publishing, the list")
    release_sub = release.add_subparsers(dest="release_command", required=True)
    p = release_sub.add_parser("keygen", help=cmd_keygen.__doc__)
    p.add_argument("--out", required=True, help="where to write the private key (0600)")
    p.set_defaults(func=cmd_keygen)
    p = release_sub.add_parser("publish", help=cmd_publish.__doc__)
    p.add_argument("artifact", help="the wheel (scripts/build-kiosk-deb.sh --version makes one)")
    p.add_argument("--key", required=True, help="the release key file")
    p.add_argument("--notes", help="what changed")
    p.add_argument("--actor", help="who (recorded in the audit log; default: your login)")
    p.set_defaults(func=cmd_publish)
    release_sub.add_parser("list", help=cmd_releases.__doc__).set_defaults(func=cmd_releases)

    update = sub.add_parser("rollout", help="roll kiosk releases out, in stages")
    update_sub = update.add_subparsers(dest="rollout_command", required=True)
    p = update_sub.add_parser("start", help=cmd_start.__doc__)
    p.add_argument("version")
    p.add_argument("--percent", type=int, default=0, help="share of the fleet (0-100)")
    p.add_argument("--kiosks", help="these kiosks first, comma-separated")
    p.add_argument(
        "--abort-percent", type=int, default=20, help="halt when this %% of finished kiosks fail"
    )
    p.add_argument("--abort-min", type=int, default=1, help="...after this many finished")
    _why(p)
    p.set_defaults(func=cmd_start)
    update_sub.add_parser("list", help=cmd_list.__doc__).set_defaults(func=cmd_list)
    p = update_sub.add_parser("show", help=cmd_show.__doc__)
    p.add_argument("rollout_id", type=int)
    p.set_defaults(func=cmd_show)
    for action in ("pause", "resume", "abort"):
        p = update_sub.add_parser(action, help=f"{action} a rollout")
        p.add_argument("rollout_id", type=int)
        _why(p)
        p.set_defaults(func=_changer(action))
