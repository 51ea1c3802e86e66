"""``cs-admin audit verify|export``: check the audit log's hash chain, export it as JSON lines."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import IO


def _moment(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time") from exc


def cmd_verify(args: argparse.Namespace) -> None:
    """Walk the audit chain; exit 1 and name the first broken row if it does not hold."""
    from provisioning import cli

    report = cli._call(args, "GET", "/audit/verify")
    cli._show(
        args,
        report,
        ["intact", "checked", "pending", "broken_seq", "problem"],
    )
    if not report["intact"]:
        raise cli.RefusedError(
            f"audit chain broken at seq {report['broken_seq']}: {report['problem']}"
        )


def cmd_export(args: argparse.Namespace) -> None:
    """Write audit rows (with their hashes) as JSON lines, to --out or standard output."""
    from provisioning import cli

    params = {}
    if args.since is not None:
        params["since"] = args.since.isoformat()
    if args.until is not None:
        params["until"] = args.until.isoformat()
    with cli._client(args) as client, client.stream("GET", "/audit/export", params=params) as got:
        if got.status_code >= 400:
            got.read()
            raise cli.RefusedError(f"central refused ({got.status_code}): {cli._detail(got)}")
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


def register(audit: argparse.ArgumentParser) -> None:
    """Add ``verify`` and ``export`` under the ``audit`` command (which alone shows the tail)."""
    sub = audit.add_subparsers(dest="audit_command", required=False, metavar="{verify,export}")
    p = sub.add_parser("verify", help=cmd_verify.__doc__, description=cmd_verify.__doc__)
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("export", help=cmd_export.__doc__, description=cmd_export.__doc__)
    p.add_argument("--since", type=_moment, help="first time to include (ISO, UTC if no zone)")
    p.add_argument("--until", type=_moment, help="time to stop before (ISO, UTC if no zone)")
    p.add_argument("--out", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)
