"""``cs-admin``: library data, passes, labels and the fleet, from a terminal or a script.

Exit codes: 0 done, 1 central refused (the message says why), 2 bad usage, 3 central
unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from provisioning.output import safe, safe_lines

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


class UsageError(ValueError):
    """The command line cannot work as given (exit 2)."""


class RefusedError(Exception):
    """Central answered, and said no (exit 1)."""


def _token(args: argparse.Namespace) -> str:
    # What the admin typed on this command line beats what the shell environment holds.
    if args.token:
        return str(args.token)
    if args.token_file is not None:
        try:
            return Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise UsageError(f"cannot read token file {args.token_file}: {exc.strerror}") from exc
    token = os.environ.get("CS_ADMIN_TOKEN", "")
    if not token:
        raise UsageError("no admin token: pass --token, --token-file or set CS_ADMIN_TOKEN")
    return token


def _client(args: argparse.Namespace) -> httpx.Client:
    token = _token(args)
    # Central's HTTPS certificate comes from the project CA, not a public one.
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=args.ca) if args.ca else True
    return httpx.Client(
        base_url=args.url,
        timeout=10,
        verify=verify,
        headers={"Authorization": f"Bearer {token}"},
    )


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    widths = {c: max([len(c)] + [len(_cell(r.get(c))) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(_cell(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    # Names, reasons and kiosk reports come from data: shown escaped, never obeyed.
    return "" if value is None else safe(value)


def _detail(response: httpx.Response) -> str:
    """Central's reason in words: FastAPI's validation list becomes ``field: message``."""
    try:
        detail = response.json().get("detail", "")
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(detail, list):
        parts = []
        for error in detail:
            where = ".".join(str(p) for p in error.get("loc", []) if p != "body")
            parts.append(f"{where}: {error.get('msg', error)}" if where else str(error))
        return "; ".join(parts)
    return str(detail)


def _call(
    args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    with _client(args) as client:
        response = client.request(method, path, json=body)
    if response.status_code >= 400:
        raise RefusedError(f"central refused ({response.status_code}): {_detail(response)}")
    return response.json()


def _show(args: argparse.Namespace, data: Any, columns: Sequence[str] | None = None) -> None:
    if args.json or columns is None:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(_table(data if isinstance(data, list) else [data], columns))


def cmd_items(args: argparse.Namespace) -> None:
    """List items and where they stand."""
    _show(args, _call(args, "GET", "/items"), ["item_id", "shelf_id", "name", "state", "due_at"])


def cmd_pass(args: argparse.Namespace) -> None:
    """Issue a single-use pass for a member; optionally save it as a PNG or SVG."""
    body = {"ttl_s": args.ttl} if args.ttl is not None else {}
    issued = _call(args, "POST", f"/members/{args.member_id}/passes", body)
    if args.out:
        from provisioning import printing

        member = _call(args, "GET", f"/members/{args.member_id}")
        expires_at = datetime.fromisoformat(issued["expires_at"])
        printing.save_pass(
            Path(args.out), issued["code"], member["name"], member["member_id"], expires_at
        )
    _show(args, issued, ["member_id", "pass_id", "expires_at", "code"])


def cmd_member_invite(args: argparse.Namespace) -> None:
    """Invite a member to the members' app: e-mail a sign-in link, or print one to hand over."""
    body = {"email": args.email} if args.email else {}
    invited = _call(args, "POST", f"/members/{args.member_id}/invite", body)
    _show(args, invited, ["member_id", "status", "email" if args.email else "link"])


def cmd_label(args: argparse.Namespace) -> None:
    """Show an item's current label code (--reprint: a new one); optionally save it."""
    label = _call(args, "POST" if args.reprint else "GET", f"/items/{args.item_id}/label")
    if args.out:
        import segno

        segno.make_qr(label["code"], error="m").save(args.out, scale=8, border=4)
    _show(args, label, ["item_id", "version", "code"])


def cmd_add(args: argparse.Namespace) -> None:
    """Add a shelf, item, member or kiosk."""
    fields = {}
    for pair in args.fields:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"{pair!r} is not FIELD=VALUE")
        fields[name] = value
    _show(args, _call(args, "POST", f"/{args.kind}", fields))


def cmd_ready(args: argparse.Namespace) -> None:
    """Whether central is ready (database, broker, queue) and what is wrong if not."""
    with _client(args) as client:
        response = client.get("/ready")
    body = response.json()
    _show(args, {"ready": body["ready"], **body["checks"]}, ["ready", *body["checks"]])
    for problem in body["problems"]:
        print(safe_lines(f"not ready: {problem}"), file=sys.stderr)
    if not body["ready"]:
        raise RefusedError("central is not ready")


def cmd_audit(args: argparse.Namespace) -> None:
    """The newest audit rows."""
    _show(
        args,
        _call(args, "GET", f"/audit?limit={args.limit}"),
        ["at", "actor", "action", "reason", "kiosk_id", "member_id", "item_id"],
    )


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(
        prog="cs-admin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    top.add_argument(
        "--url",
        default=os.environ.get("CS_ADMIN_URL", "http://127.0.0.1:8480"),
        help="central's admin API (default $CS_ADMIN_URL or local)",
    )
    top.add_argument(
        "--ca",
        default=os.environ.get("CS_ADMIN_CA") or None,
        help="CA certificate that signed central's HTTPS certificate (or $CS_ADMIN_CA)",
    )
    top.add_argument("--token", help="admin bearer token (or $CS_ADMIN_TOKEN)")
    top.add_argument("--token-file", help="file holding the admin token")
    top.add_argument("--json", action="store_true", help="machine-readable output")
    sub = top.add_subparsers(dest="command", required=True)
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
    audit_parser = p = sub.add_parser("audit", help=cmd_audit.__doc__)
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_audit)
    kiosk = sub.add_parser(
        "kiosk", help="one kiosk: enrol, show, config, identify, block, retire, enrolment codes"
    )
    kiosk_sub = kiosk.add_subparsers(dest="kiosk_command", required=True)
    # Command modules import this one's helpers, so they are loaded here, not at the top.
    from provisioning import (
        audit,
        enrol,
        fleet,
        library,
        loans,
        printing,
        releases,
        rollout,
        security,
    )

    audit.register(audit_parser)
    loans.register(sub)
    fleet.register(sub, kiosk_sub)
    enrol.register(sub, kiosk_sub)
    library.register(sub)
    printing.register(sub)
    rollout.register(sub)
    security.register(sub, kiosk_sub)
    releases.register(sub)
    _json_anywhere(top)
    return top


def _json_anywhere(parser: argparse.ArgumentParser) -> None:
    """Let ``--json`` follow any command (``cs-admin kiosks --json``) as well as lead it."""
    for action in parser._actions:  # argparse keeps subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if "--json" not in child._option_string_actions:
                    # SUPPRESS: absent here, the top-level value stands.
                    child.add_argument(
                        "--json",
                        action="store_true",
                        default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS,
                    )
                _json_anywhere(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one admin command."""
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except RefusedError as exc:
        print(safe_lines(exc), file=sys.stderr)
        return EXIT_REFUSED
    except UsageError as exc:
        print(safe_lines(f"bad arguments: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except httpx.TransportError as exc:
        print(safe_lines(f"cannot reach central at {args.url}: {exc}"), file=sys.stderr)
        return EXIT_UNREACHABLE
    return 0


if __name__ == "__main__":
    sys.exit(main())
