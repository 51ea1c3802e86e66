"""``cs-admin flag``, ``kill-switch`` and ``breaker``: the rollout controls operators use."""

from __future__ import annotations

import argparse
import getpass
import re
from typing import Any

from provisioning.api_client import call
from provisioning.errors import UsageError
from provisioning.output import safe, show, table

_FLAG_COLUMNS = ("mode", "percent", "members", "items", "kiosks", "breaker_tripped", "changed_by")
_ACTOR = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


def _actor(args: argparse.Namespace) -> str:
    # The admin API has one shared token; the audit log still says who typed the command.
    actor = args.actor or getpass.getuser()
    if not _ACTOR.match(actor):
        raise UsageError(f"--actor {actor!r}: letters, digits and . _ @ - only")
    return str(actor)


def _ids(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _flag_rows(flag: dict[str, Any]) -> list[dict[str, Any]]:
    row = dict(flag)
    for name in ("members", "items", "kiosks"):
        row[name] = ",".join(row.get(name) or []) or None
    if row.get("mode") != "percentage":
        row["percent"] = None
    row["breaker_tripped"] = "yes" if row.get("breaker_tripped") else "no"
    return [row]


def _show_flag(args: argparse.Namespace, flag: dict[str, Any]) -> None:
    if args.json:
        show(args, flag)
        return
    print(table(_flag_rows(flag), _FLAG_COLUMNS))
    print(safe(f"why: {flag['reason']} ({flag['changed_at']})"))
    if flag.get("breaker_tripped"):
        print(safe(f"circuit breaker tripped: {flag.get('trip_reason')}; checkout stays off"))
    if flag.get("kiosks_told") is not None:
        print(f"kiosk configs republished: {flag['kiosks_told']}")


def cmd_flag_show(args: argparse.Namespace) -> None:
    """Show the qr-checkout-enabled flag."""
    _show_flag(args, call(args, "GET", "/rollout/flag"))


def cmd_flag_set(args: argparse.Namespace) -> None:
    """Set the flag: off, allow-list, percentage or on."""
    body: dict[str, Any] = {"mode": args.mode, "reason": args.reason, "actor": _actor(args)}
    for name in ("members", "items", "kiosks"):
        ids = _ids(getattr(args, name))
        if ids:
            body[name] = ids
    if args.percent is not None:
        body["percent"] = args.percent
    lists = any(k in body for k in ("members", "items", "kiosks"))
    if args.mode == "allow-list" and not lists:
        raise UsageError("allow-list needs --members, --items or --kiosks")
    if args.mode != "allow-list" and lists:
        raise UsageError("--members, --items and --kiosks go with allow-list only")
    if (args.mode == "percentage") != (args.percent is not None):
        raise UsageError("--percent N goes with percentage, and percentage needs it")
    if args.percent is not None and not 0 <= args.percent <= 100:
        raise UsageError("--percent must be 0-100")
    _show_flag(args, call(args, "PUT", "/rollout/flag", body))


def cmd_kill_switch(args: argparse.Namespace) -> None:
    """Turn checkout off everywhere now; optionally invalidate every active pass."""
    body = {"reason": args.reason, "actor": _actor(args)}
    flag = call(args, "POST", "/rollout/kill-switch", body)
    invalidated = None
    if args.invalidate_passes:
        invalidated = call(args, "POST", "/passes/invalidate", {"reason": args.reason})[
            "invalidated"
        ]
    if args.json:
        show(args, {"flag": flag, "invalidated_passes": invalidated})
        return
    _show_flag(args, flag)
    if invalidated is not None:
        print(f"passes invalidated: {invalidated}")


def cmd_breaker_show(args: argparse.Namespace) -> None:
    """Show the circuit breaker and the window it judges."""
    state = call(args, "GET", "/rollout/breaker")
    if args.json:
        show(args, state)
        return
    row = dict(state)
    row["tripped"] = "yes" if state["tripped"] else "no"
    row["error_rate"] = f"{state['errors'] / state['scans']:.1%}" if state["scans"] else None
    columns = ("tripped", "scans", "errors", "errors_counted", "error_rate", "security_alerts")
    print(table([row], columns))
    print(
        f"trips at: error rate > {state['max_error_rate']:.0%} of >= {state['min_scans']} scans"
        f" (each kiosk counted up to 1/{state['min_kiosks']} of it),"
        f" or security alerts from {state['max_security_alerts']} kiosks,"
        f" within {state['window_s']:g} s"
    )
    if state["tripped"]:
        print(safe(f"tripped at {state['tripped_at']}: {state['trip_reason']}"))


def cmd_breaker_reset(args: argparse.Namespace) -> None:
    """Reset a tripped breaker (checkout stays off until `flag set`)."""
    body = {"reason": args.reason, "actor": _actor(args)}
    _show_flag(args, call(args, "POST", "/rollout/breaker/reset", body))
    if not args.json:
        print("checkout is still off: turn it back on with `cs-admin flag set MODE ...`")


def _why(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    parser.add_argument("--actor", help="who (recorded in the audit log; default: your login)")


def register(sub: Any) -> None:
    """Add the rollout commands to ``cs-admin``'s subcommands."""
    flag = sub.add_parser("flag", help="the qr-checkout-enabled rollout flag")
    flag_sub = flag.add_subparsers(dest="flag_command", required=True)
    flag_sub.add_parser("show", help=cmd_flag_show.__doc__).set_defaults(func=cmd_flag_show)
    p = flag_sub.add_parser("set", help=cmd_flag_set.__doc__)
    p.add_argument("mode", choices=["off", "allow-list", "percentage", "on"])
    p.add_argument("--members", help="allow-list: member ids, comma-separated")
    p.add_argument("--items", help="allow-list: item ids, comma-separated")
    p.add_argument("--kiosks", help="allow-list: kiosk ids, comma-separated")
    p.add_argument("--percent", type=int, help="percentage: 0-100 of members")
    _why(p)
    p.set_defaults(func=cmd_flag_set)

    p = sub.add_parser("kill-switch", help=cmd_kill_switch.__doc__)
    p.add_argument(
        "--invalidate-passes", action="store_true", help="also invalidate every active pass"
    )
    _why(p)
    p.set_defaults(func=cmd_kill_switch)

    breaker = sub.add_parser("breaker", help="the checkout circuit breaker")
    breaker_sub = breaker.add_subparsers(dest="breaker_command", required=True)
    p = breaker_sub.add_parser("show", help=cmd_breaker_show.__doc__)
    p.set_defaults(func=cmd_breaker_show)
    p = breaker_sub.add_parser("reset", help=cmd_breaker_reset.__doc__)
    _why(p)
    p.set_defaults(func=cmd_breaker_reset)
