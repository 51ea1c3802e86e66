"""``cs-admin`` circulation commands: holds, reservations, repair tickets, policies."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from provisioning.api_client import call
from provisioning.output import show

_HOLD = [
    "hold_id",
    "item_id",
    "member_id",
    "state",
    "placed_via",
    "placed_at",
    "ready_at",
    "notified_at",
]
_BOOKING = ["reservation_id", "item_id", "member_id", "starts_at", "ends_at"]
_TICKET = ["ticket_id", "item_id", "kiosk_id", "member_id", "opened_at", "note", "closed_at"]
_CATEGORY = [
    "name",
    "loan_days",
    "max_renewals",
    "max_out",
    "needs_training",
    "needs_agreement",
    "inspection_required",
    "buffer_hours",
]


def _done(args: argparse.Namespace, **what: Any) -> None:
    """Say what an answer without a body did."""
    show(args, what, list(what))


def cmd_holds_place(args: argparse.Namespace) -> None:
    """Put a member on an item's waitlist (ready at once if the item is on its shelf)."""
    body = {"item_id": args.item_id, "member_id": args.member_id}
    show(args, call(args, "POST", "/holds", body), _HOLD)


def cmd_holds_list(args: argparse.Namespace) -> None:
    """Open holds in queue order (of one item or member with --item/--member)."""
    query = [f"{k}={v}" for k, v in (("item_id", args.item), ("member_id", args.member)) if v]
    if args.all:
        query.append("include_closed=true")
    path = "/holds" + ("?" + "&".join(query) if query else "")
    show(args, call(args, "GET", path), _HOLD)


def cmd_holds_told(args: argparse.Namespace) -> None:
    """Record that a ready hold's member was told (phone, desk): its clock starts."""
    call(args, "POST", f"/holds/{args.hold_id}/told", {"how": args.how})
    print(f"hold {args.hold_id}: member told ({args.how})")


def cmd_holds_cancel(args: argparse.Namespace) -> None:
    """Cancel a hold; a ready one passes the item to the next member."""
    call(args, "DELETE", f"/holds/{args.hold_id}")
    _done(args, hold_id=args.hold_id, state="cancelled")


def cmd_reservations_add(args: argparse.Namespace) -> None:
    """Book an item for a member from START to END (ISO times with a zone)."""
    body = {
        "item_id": args.item_id,
        "member_id": args.member_id,
        "starts_at": args.starts_at,
        "ends_at": args.ends_at,
    }
    show(args, call(args, "POST", "/reservations", body), _BOOKING)


def cmd_reservations_list(args: argparse.Namespace) -> None:
    """Bookings not yet over, soonest first."""
    path = "/reservations" + (f"?item_id={args.item}" if args.item else "")
    show(args, call(args, "GET", path), _BOOKING)


def cmd_reservations_cancel(args: argparse.Namespace) -> None:
    """Cancel a booking."""
    call(args, "DELETE", f"/reservations/{args.reservation_id}")
    _done(args, reservation_id=args.reservation_id, state="cancelled")


def cmd_tickets_list(args: argparse.Namespace) -> None:
    """Open repair tickets, newest first (--all: closed ones too)."""
    path = "/tickets" + ("?include_closed=true" if args.all else "")
    show(args, call(args, "GET", path), _TICKET)


def cmd_tickets_open(args: argparse.Namespace) -> None:
    """Put an item in maintenance with a repair ticket."""
    body = {"item_id": args.item_id, "note": args.note}
    show(args, call(args, "POST", "/tickets", body), _TICKET)


def cmd_tickets_close(args: argparse.Namespace) -> None:
    """Close a ticket; the item goes back on its shelf (and to its waitlist) unless --keep."""
    call(args, "POST", f"/tickets/{args.ticket_id}/close", {"back_in_service": not args.keep})
    _done(args, ticket_id=args.ticket_id, back_in_service=not args.keep)


def cmd_policy_set(args: argparse.Namespace) -> None:
    """Create or replace a category's loan policy."""
    body: dict[str, Any] = {
        "name": args.name,
        "loan_days": args.loan_days,
        "max_renewals": args.max_renewals,
        "max_out": args.max_out,
        "needs_training": args.needs_training,
        "needs_agreement": args.needs_agreement,
        "inspection_required": args.inspection_required,
        "buffer_hours": args.buffer_hours,
    }
    call(args, "PUT", "/policies/categories", body)
    show(args, body, _CATEGORY)


def cmd_policy_list(args: argparse.Namespace) -> None:
    """Every category's loan policy."""
    show(args, call(args, "GET", "/policies/categories"), _CATEGORY)


def cmd_policy_file(args: argparse.Namespace) -> None:
    """Lend an item under a category's policy (--default: the item's own loan period)."""
    category = None if args.category == "-" else args.category
    call(args, "PUT", f"/policies/items/{args.item_id}", {"category": category})
    _done(args, item_id=args.item_id, category=category)


def cmd_training_record(args: argparse.Namespace) -> None:
    """Record that a member is trained for a category."""
    call(
        args, "POST", "/policies/training", {"member_id": args.member_id, "category": args.category}
    )
    _done(args, member_id=args.member_id, category=args.category)


def cmd_agreement_publish(args: argparse.Namespace) -> None:
    """Make the text in FILE the current lending agreement."""
    text = Path(args.file).read_text(encoding="utf-8")
    show(args, call(args, "POST", "/policies/agreements", {"text": text}), ["version"])


def cmd_agreement_accept(args: argparse.Namespace) -> None:
    """Record that a member accepted the current agreement."""
    answer = call(args, "POST", "/policies/agreements/accept", {"member_id": args.member_id})
    show(args, answer, ["version"])


def cmd_settings_show(args: argparse.Namespace) -> None:
    """The library's circulation settings."""
    show(args, call(args, "GET", "/policies/settings"), _SETTINGS)


def cmd_settings_set(args: argparse.Namespace) -> None:
    """Change circulation settings (the ones not given stay as they are)."""
    current = call(args, "GET", "/policies/settings")
    for key in _SETTINGS:
        value = getattr(args, key)
        if value is not None:
            current[key] = value
    call(args, "PUT", "/policies/settings", current)
    show(args, current, _SETTINGS)


_SETTINGS = ["hold_hours", "overdue_block_days", "renew_grace_hours", "reservation_min_hours"]


def _group(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    return sub.add_parser(name, help=help_text).add_subparsers(
        dest=f"{name}_command", required=True
    )


def _command(
    group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, func: Any
) -> argparse.ArgumentParser:
    p = group.add_parser(name, help=func.__doc__, description=func.__doc__)
    p.set_defaults(func=func)
    return p


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``holds``, ``reservations``, ``tickets``, ``policy``, ``training``,
    ``agreement`` and ``circulation`` to ``cs-admin``."""
    holds = _group(sub, "holds", "holds: an item's waitlist")
    p = _command(holds, "place", cmd_holds_place)
    p.add_argument("item_id", metavar="ITEM")
    p.add_argument("member_id", metavar="MEMBER")
    p = _command(holds, "list", cmd_holds_list)
    p.add_argument("--item")
    p.add_argument("--member")
    p.add_argument("--all", action="store_true", help="closed holds too")
    p = _command(holds, "told", cmd_holds_told)
    p.add_argument("hold_id", metavar="HOLD", type=int)
    p.add_argument("--how", default="by staff", help="how the member was told (phoned, ...)")
    p = _command(holds, "cancel", cmd_holds_cancel)
    p.add_argument("hold_id", metavar="HOLD", type=int)

    bookings = _group(sub, "reservations", "reservations: items booked for dates")
    p = _command(bookings, "add", cmd_reservations_add)
    p.add_argument("item_id", metavar="ITEM")
    p.add_argument("member_id", metavar="MEMBER")
    p.add_argument("starts_at", metavar="START")
    p.add_argument("ends_at", metavar="END")
    p = _command(bookings, "list", cmd_reservations_list)
    p.add_argument("--item")
    p = _command(bookings, "cancel", cmd_reservations_cancel)
    p.add_argument("reservation_id", metavar="RESERVATION", type=int)

    _register_staff(sub)
    _register_policies(sub)


def _register_staff(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tickets = _group(sub, "tickets", "repair tickets")
    p = _command(tickets, "list", cmd_tickets_list)
    p.add_argument("--all", action="store_true", help="closed tickets too")
    p = _command(tickets, "open", cmd_tickets_open)
    p.add_argument("item_id", metavar="ITEM")
    p.add_argument("--note", default="", help="what is wrong")
    p = _command(tickets, "close", cmd_tickets_close)
    p.add_argument("ticket_id", metavar="TICKET", type=int)
    p.add_argument("--keep", action="store_true", help="keep the item in maintenance")


def _register_policies(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = _group(sub, "policy", "loan policies per category")
    p = _command(policy, "set", cmd_policy_set)
    p.add_argument("name", metavar="CATEGORY")
    p.add_argument("--loan-days", type=int, help="default: the item's own")
    p.add_argument("--max-renewals", type=int, default=2)
    p.add_argument("--max-out", type=int, help="items of it one member may have out")
    p.add_argument("--needs-training", action="store_true")
    p.add_argument("--needs-agreement", action="store_true")
    p.add_argument("--inspection-required", action="store_true")
    p.add_argument("--buffer-hours", type=int, default=0, help="kept free before a booking")
    _command(policy, "list", cmd_policy_list)
    p = _command(policy, "file", cmd_policy_file)
    p.add_argument("item_id", metavar="ITEM")
    p.add_argument("category", metavar="CATEGORY", help="'-' for the default policy")

    training = _group(sub, "training", "members' training records")
    p = _command(training, "record", cmd_training_record)
    p.add_argument("member_id", metavar="MEMBER")
    p.add_argument("category", metavar="CATEGORY")

    agreement = _group(sub, "agreement", "the lending agreement")
    p = _command(agreement, "publish", cmd_agreement_publish)
    p.add_argument("file", metavar="FILE")
    p = _command(agreement, "accept", cmd_agreement_accept)
    p.add_argument("member_id", metavar="MEMBER")

    settings = _group(sub, "circulation", "circulation settings")
    _command(settings, "show", cmd_settings_show)
    p = _command(settings, "set", cmd_settings_set)
    for key in _SETTINGS:
        p.add_argument(f"--{key.replace('_', '-')}", dest=key, type=int)
