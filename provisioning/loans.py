"""``cs-admin loans overdue``: who has kept which item past its due time."""

from __future__ import annotations

import argparse

from provisioning.api_client import call
from provisioning.output import show


def cmd_overdue(args: argparse.Namespace) -> None:
    """List items kept past their due time, most overdue first."""
    show(
        args,
        call(args, "GET", "/loans/overdue"),
        ["member_id", "member_name", "item_id", "item_name", "due_at", "days_late"],
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``loans`` command."""
    loans = sub.add_parser("loans", help="loans: overdue items")
    inner = loans.add_subparsers(dest="loans_command", required=True)
    p = inner.add_parser("overdue", help=cmd_overdue.__doc__, description=cmd_overdue.__doc__)
    p.set_defaults(func=cmd_overdue)
