"""``cs-admin items|pass|label|add|ready``: records, one pass or label, and readiness."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from provisioning import printing
from provisioning.api_client import call, open_client
from provisioning.errors import RefusedError, UsageError
from provisioning.output import safe_lines, show


def cmd_items(args: argparse.Namespace) -> None:
    """List items and where they stand."""
    show(args, call(args, "GET", "/items"), ["item_id", "shelf_id", "name", "state", "due_at"])


def cmd_pass(args: argparse.Namespace) -> None:
    """Issue a single-use pass for a member; optionally save it as a PNG or SVG."""
    body = {"ttl_s": args.ttl} if args.ttl is not None else {}
    issued = call(args, "POST", f"/members/{args.member_id}/passes", body)
    if args.out:
        member = call(args, "GET", f"/members/{args.member_id}")
        expires_at = datetime.fromisoformat(issued["expires_at"])
        printing.save_pass(
            Path(args.out), issued["code"], member["name"], member["member_id"], expires_at
        )
    show(args, issued, ["member_id", "pass_id", "expires_at", "code"])


def cmd_member_invite(args: argparse.Namespace) -> None:
    """Invite a member to the members' app: e-mail a sign-in link, or print one to hand over."""
    body = {"email": args.email} if args.email else {}
    invited = call(args, "POST", f"/members/{args.member_id}/invite", body)
    show(args, invited, ["member_id", "status", "email" if args.email else "link"])


def cmd_label(args: argparse.Namespace) -> None:
    """Show an item's current label code (--reprint: a new one); optionally save it."""
    label = call(args, "POST" if args.reprint else "GET", f"/items/{args.item_id}/label")
    if args.out:
        import segno

        segno.make_qr(label["code"], error="m").save(args.out, scale=8, border=4)
    show(args, label, ["item_id", "version", "code"])


def cmd_add(args: argparse.Namespace) -> None:
    """Add a shelf, item, member or kiosk."""
    fields = {}
    for pair in args.fields:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"{pair!r} is not FIELD=VALUE")
        fields[name] = value
    show(args, call(args, "POST", f"/{args.kind}", fields))


def cmd_ready(args: argparse.Namespace) -> None:
    """Whether central is ready (database, broker, queue) and what is wrong if not."""
    with open_client(args) as client:
        response = client.get("/ready")
    body = response.json()
    show(args, {"ready": body["ready"], **body["checks"]}, ["ready", *body["checks"]])
    for problem in body["problems"]:
        print(safe_lines(f"not ready: {problem}"), file=sys.stderr)
    if not body["ready"]:
        raise RefusedError("central is not ready")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``items``, ``pass``, ``member invite``, ``label``, ``add`` and ``ready``."""
    sub.add_parser("items", help=cmd_items.__doc__).set_defaults(func=cmd_items)
    p = sub.add_parser("pass", help=cmd_pass.__doc__)
    p.add_argument("member_id")
    p.add_argument("--ttl", type=int, help="lifetime in seconds")
    p.add_argument("--out", help="write the pass as .png or .svg")
    p.set_defaults(func=cmd_pass)
    member = sub.add_parser("member", help="members' app: invitations")
    member_sub = member.add_subparsers(dest="member_command", required=True)
    p = member_sub.add_parser("invite", help=cmd_member_invite.__doc__)
    p.add_argument("member_id")
    p.add_argument("--email", help="send the link here (else print it)")
    p.set_defaults(func=cmd_member_invite)
    p = sub.add_parser("label", help=cmd_label.__doc__)
    p.add_argument("item_id")
    p.add_argument("--out", help="write the label as .png or .svg")
    p.add_argument("--reprint", action="store_true", help="new version; the old label stops")
    p.set_defaults(func=cmd_label)
    p = sub.add_parser("add", help=cmd_add.__doc__)
    p.add_argument("kind", choices=["shelves", "items", "members", "kiosks"])
    p.add_argument("fields", nargs="+", metavar="FIELD=VALUE")
    p.set_defaults(func=cmd_add)
    sub.add_parser("ready", help=cmd_ready.__doc__).set_defaults(func=cmd_ready)
