"""``cs-admin`` security commands: rotate the signing key, invalidate passes, block kiosks."""

from __future__ import annotations

import argparse
from typing import Any

from provisioning.api_client import call
from provisioning.errors import UsageError
from provisioning.output import show


def cmd_keys_rotate(args: argparse.Namespace) -> None:
    """Sign new codes with a new key; codes under the old one verify for the grace period."""
    show(
        args,
        call(args, "POST", "/keys/rotate"),
        ["active", "previous", "previous_valid_until"],
    )


def cmd_keys_list(args: argparse.Namespace) -> None:
    """Key ids in the ring, which one signs, and when retired ones stop verifying."""
    show(args, call(args, "GET", "/keys"), ["key_id", "active", "retired_at", "valid_until"])


def cmd_passes_invalidate(args: argparse.Namespace) -> None:
    """Invalidate every pass not yet used or expired (members need new passes)."""
    show(
        args,
        call(args, "POST", "/passes/invalidate", {"reason": args.reason}),
        ["invalidated"],
    )


def cmd_kiosk_block(args: argparse.Namespace) -> None:
    """Refuse every scan from a kiosk (KIOSK_BLOCKED) until unblocked or the time runs out."""
    if args.minutes is not None and args.minutes < 1:
        raise UsageError("--for takes a whole number of minutes, at least 1")
    body: dict[str, Any] = {"reason": args.reason}
    if args.minutes is not None:
        body["minutes"] = args.minutes
    show(
        args,
        call(args, "POST", f"/kiosks/{args.kiosk_id}/block", body),
        ["kiosk_id", "blocked_until"],
    )


def cmd_kiosk_unblock(args: argparse.Namespace) -> None:
    """Lift a kiosk's block (by hand or automatic)."""
    show(
        args,
        call(args, "POST", f"/kiosks/{args.kiosk_id}/unblock", {"reason": args.reason}),
        ["kiosk_id", "blocked_until"],
    )


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    kiosk: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``keys`` and ``passes`` to ``cs-admin``, ``block`` and ``unblock`` to ``kiosk``."""
    keys = sub.add_parser("keys", help="the signing key ring").add_subparsers(
        dest="keys_command", required=True
    )
    keys.add_parser("rotate", help=cmd_keys_rotate.__doc__).set_defaults(func=cmd_keys_rotate)
    keys.add_parser("list", help=cmd_keys_list.__doc__).set_defaults(func=cmd_keys_list)

    passes = sub.add_parser("passes", help="member passes in bulk").add_subparsers(
        dest="passes_command", required=True
    )
    p = passes.add_parser("invalidate", help=cmd_passes_invalidate.__doc__)
    p.add_argument("--reason", required=True, help="why, for the audit log")
    p.set_defaults(func=cmd_passes_invalidate)

    p = kiosk.add_parser("block", help=cmd_kiosk_block.__doc__)
    p.add_argument("kiosk_id", metavar="KIOSK")
    p.add_argument("--for", dest="minutes", type=int, metavar="MINUTES", help="default: a year")
    p.add_argument("--reason", required=True, help="why, for the audit log")
    p.set_defaults(func=cmd_kiosk_block)
    p = kiosk.add_parser("unblock", help=cmd_kiosk_unblock.__doc__)
    p.add_argument("kiosk_id", metavar="KIOSK")
    p.add_argument("--reason", default="unblocked by admin", help="why, for the audit log")
    p.set_defaults(func=cmd_kiosk_unblock)
