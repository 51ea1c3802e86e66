"""``cs-admin audit verify|export``: check the audit log's hash chain, export it as JSON lines."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import IO

from provisioning.api_client import call, open_client, refusal
from provisioning.errors import RefusedError
from provisioning.output import show


def _moment(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time") from exc


def cmd_audit(args: argparse.Namespace) -> None:
    """The newest audit rows."""
    show(
        args,
        call(args, "GET", f"/audit?limit={args.limit}"),
        ["at", "actor", "action", "reason", "kiosk_id", "member_id", "item_id"],
    )


def cmd_verify(args: argparse.Namespace) -> None:
    """Walk the audit chain; exit 1 and name the first broken row if it does not hold."""
    report = call(args, "GET", "/audit/verify")
    show(
        args,
        report,
        ["intact", "checked", "pending", "broken_seq", "problem"],
    )
    if not report["intact"]:
        raise RefusedError(f"audit chain broken at seq {report['broken_seq']}: {report['problem']}")


def cmd_export(args: argparse.Namespace) -> None:
    """Write audit rows (with their hashes) as JSON lines, to --out or standard output."""
    params = {}
    if args.since is not None:
        params["since"] = args.since.isoformat()
    if args.until is not None:
        params["until"] = args.until.isoformat()
    with open_client(args) as client, client.stream("GET", "/audit/export", params=params) as got:
        if got.status_code >= 400:
            got.read()
            raise refusal(got)
        out: IO[bytes] = Path(args.out).open("wb") if args.out else sys.stdout.buffer  # noqa: SIM115 - closed below
        try:
            # Streamed as it arrives: an export of years of rows never sits in memory.
            for chunk in got.iter_bytes():
                out.write(chunk)
        finally:
            if args.out:
                out.close()
            else:
                out.flush()


def register(top: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit`` (alone: the tail) with ``verify`` and ``export`` under it."""
    audit = top.add_parser("audit", help=cmd_audit.__doc__)
    audit.add_argument("--limit", type=int, default=50)
    audit.set_defaults(func=cmd_audit)
    sub = audit.add_subparsers(dest="audit_command", required=False, metavar="{verify,export}")
    p = sub.add_parser("verify", help=cmd_verify.__doc__, description=cmd_verify.__doc__)
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("export", help=cmd_export.__doc__, description=cmd_export.__doc__)
    p.add_argument("--since", type=_moment, help="first time to include (ISO, UTC if no zone)")
    p.add_argument("--until", type=_moment, help="time to stop before (ISO, UTC if no zone)")
    p.add_argument("--out", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)
