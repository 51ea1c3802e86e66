"""``cs-admin staff``: invite staff to the console (volunteer or admin), list and disable them."""

from __future__ import annotations

import argparse

from provisioning.api_client import call
from provisioning.output import show


def cmd_invite(args: argparse.Namespace) -> None:
    """Invite a staff member: their console account and a one-time sign-in link by e-mail."""
    body: dict[str, object] = {"email": args.email, "name": args.name or "", "role": args.role}
    if args.print_link:
        body["mail"] = False
    show(
        args,
        call(args, "POST", "/staff-accounts/invite", body),
        ["staff_id", "email", "role", "status", "link"],
    )


def cmd_list(args: argparse.Namespace) -> None:
    """List staff accounts."""
    show(
        args,
        call(args, "GET", "/staff-accounts"),
        ["staff_id", "name", "email", "role", "disabled"],
    )


def cmd_disable(args: argparse.Namespace) -> None:
    """Switch a staff account off: its sessions and passkeys stop at once."""
    show(
        args,
        call(args, "POST", f"/staff-accounts/{args.staff_id}/disable"),
        ["staff_id", "disabled"],
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``staff`` command."""
    staff = sub.add_parser("staff", help="staff console accounts: invite, list, disable")
    inner = staff.add_subparsers(dest="staff_command", required=True)
    p = inner.add_parser("invite", help=cmd_invite.__doc__, description=cmd_invite.__doc__)
    p.add_argument("email")
    p.add_argument("--name", help="their name, as the audit log shows it")
    p.add_argument("--role", choices=["volunteer", "admin"], default="volunteer")
    p.add_argument(
        "--print-link", action="store_true", help="print the link instead of e-mailing it"
    )
    p.set_defaults(func=cmd_invite)
    p = inner.add_parser("list", help=cmd_list.__doc__, description=cmd_list.__doc__)
    p.set_defaults(func=cmd_list)
    p = inner.add_parser("disable", help=cmd_disable.__doc__, description=cmd_disable.__doc__)
    p.add_argument("staff_id")
    p.set_defaults(func=cmd_disable)
