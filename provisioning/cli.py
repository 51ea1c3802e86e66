"""``cs-admin``: library data, passes, labels and the fleet, from a terminal or a script.

Exit codes: 0 done, 1 central refused (the message says why), 2 bad usage, 3 central
unreachable.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import httpx

from provisioning import (
    audit,
    basics,
    circulation,
    enrol,
    fleet,
    library,
    loans,
    printing,
    releases,
    reminders,
    rollout,
    security,
    staff,
)
from provisioning.errors import EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, RefusedError, UsageError
from provisioning.output import safe_lines


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
    basics.register(sub)
    audit.register(sub)
    kiosk = sub.add_parser(
        "kiosk", help="one kiosk: enrol, show, config, identify, block, retire, enrolment codes"
    )
    kiosk_sub = kiosk.add_subparsers(dest="kiosk_command", required=True)
    loans.register(sub)
    circulation.register(sub)
    fleet.register(sub, kiosk_sub)
    enrol.register(sub, kiosk_sub)
    library.register(sub)
    printing.register(sub)
    rollout.register(sub)
    security.register(sub, kiosk_sub)
    releases.register(sub)
    staff.register(sub)
    reminders.register(sub)
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
