"""``cs-admin loans``: who has kept which item past its due time; open loans, a page at a time."""

from __future__ import annotations

import argparse
from urllib.parse import urlencode

from provisioning.api_client import call
from provisioning.output import show


def cmd_overdue(args: argparse.Namespace) -> None:
    """List items kept past their due time, most overdue first."""
    show(
        args,
        call(args, "GET", "/loans/overdue"),
        ["member_id", "member_name", "item_id", "item_name", "due_at", "days_late"],
    )


def cmd_open(args: argparse.Namespace) -> None:
    """List open loans (50 a page, soonest due first), item or member matching --search."""
    query = urlencode({"q": args.search, "page_no": args.page})
    page = call(args, "GET", f"/loans/open?{query}")
    if args.json:
        show(args, page)
        return
    show(args, page["rows"], ["item_id", "item_name", "member_id", "member_name", "due_at"])
    print(f"page {page['page']} of {page['pages']} ({page['total']} open loans)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``loans`` command."""
    loans = sub.add_parser("loans", help="loans: overdue items, open loans")
    inner = loans.add_subparsers(dest="loans_command", required=True)
    p = inner.add_parser("overdue", help=cmd_overdue.__doc__, description=cmd_overdue.__doc__)
    p.set_defaults(func=cmd_overdue)
    p = inner.add_parser("open", help=cmd_open.__doc__, description=cmd_open.__doc__)
    p.add_argument("--search", default="", help="part of an item or member id or name")
    p.add_argument("--page", type=int, default=1, help="page number (from 1)")
    p.set_defaults(func=cmd_open)
