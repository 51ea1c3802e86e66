"""``cs-admin reminders``: reminder settings, the delivery log, a round on demand."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlencode

from provisioning.api_client import call
from provisioning.errors import UsageError
from provisioning.output import show

_SETTINGS = ("enabled", "digest_hour", "timezone", "due_soon_days", "overdue_days", "changed_by")
_LOG = ("delivery_id", "member_id", "kind", "step", "items", "status", "attempts", "last_error")


def _settings_rows(settings: dict[str, Any]) -> list[dict[str, Any]]:
    row = dict(settings)
    row["overdue_days"] = ",".join(str(d) for d in row.get("overdue_days") or [])
    row["enabled"] = "yes" if row.get("enabled") else "no"
    return [row]


def cmd_settings_show(args: argparse.Namespace) -> None:
    """Show the reminder settings."""
    answer = call(args, "GET", "/reminders/settings")
    show(args, answer if args.json else _settings_rows(answer), None if args.json else _SETTINGS)


def cmd_settings_set(args: argparse.Namespace) -> None:
    """Change reminder settings (only those given)."""
    body: dict[str, Any] = {}
    if args.enabled is not None:
        body["enabled"] = args.enabled == "on"
    for name in ("digest_hour", "timezone", "due_soon_days"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    if args.overdue_days is not None:
        try:
            body["overdue_days"] = [int(d) for d in args.overdue_days.split(",") if d.strip()]
        except ValueError as exc:
            raise UsageError("--overdue-days takes whole days, e.g. 1,7,14") from exc
    if not body:
        raise UsageError("nothing to change: give at least one setting")
    answer = call(args, "PATCH", "/reminders/settings", body)
    show(args, answer if args.json else _settings_rows(answer), None if args.json else _SETTINGS)


def cmd_log(args: argparse.Namespace) -> None:
    """List reminder mails, newest first: what each named and what became of it."""
    query = {k: v for k, v in (("member", args.member), ("status", args.status)) if v}
    rows = call(args, "GET", "/reminders/log" + (f"?{urlencode(query)}" if query else ""))
    if not args.json:
        rows = [{**row, "items": ",".join(row["items"])} for row in rows]
    show(args, rows, None if args.json else _LOG)


def cmd_run_now(args: argparse.Namespace) -> None:
    """Run one reminder round now (what is due goes; nothing goes twice)."""
    show(args, call(args, "POST", "/reminders/run"), ("claimed", "sent", "failed"))


def cmd_prune(args: argparse.Namespace) -> None:
    """Forget spent claims and logged mails older than --keep-days (central does this daily)."""
    answer = call(args, "POST", f"/reminders/prune?keep_days={args.keep_days}")
    show(args, answer, ("keep_days", "claims", "mails"))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``reminders`` command."""
    reminders = sub.add_parser("reminders", help="reminder e-mails: settings, log, run-now, prune")
    inner = reminders.add_subparsers(dest="reminders_command", required=True)
    settings = inner.add_parser("settings", help="show or change the reminder settings")
    settings_sub = settings.add_subparsers(dest="settings_command", required=True)
    p = settings_sub.add_parser(
        "show", help=cmd_settings_show.__doc__, description=cmd_settings_show.__doc__
    )
    p.set_defaults(func=cmd_settings_show)
    p = settings_sub.add_parser(
        "set", help=cmd_settings_set.__doc__, description=cmd_settings_set.__doc__
    )
    p.add_argument("--enabled", choices=("on", "off"), help="send reminder mail at all")
    p.add_argument("--digest-hour", type=int, help="local hour the daily mails go from (0-23)")
    p.add_argument("--timezone", help="the library's time zone, e.g. Europe/Paris")
    p.add_argument("--due-soon-days", type=int, help="days ahead a loan counts as due soon")
    p.add_argument("--overdue-days", help="days late on which overdue mail goes, e.g. 1,7,14")
    p.set_defaults(func=cmd_settings_set)
    p = inner.add_parser("log", help=cmd_log.__doc__, description=cmd_log.__doc__)
    p.add_argument("--member", help="only this member's mail")
    p.add_argument(
        "--status",
        choices=("queued", "sent", "failed", "bounced", "no_address", "cancelled"),
        help="only mail in this state",
    )
    p.set_defaults(func=cmd_log)
    p = inner.add_parser("run-now", help=cmd_run_now.__doc__, description=cmd_run_now.__doc__)
    p.set_defaults(func=cmd_run_now)
    p = inner.add_parser("prune", help=cmd_prune.__doc__, description=cmd_prune.__doc__)
    p.add_argument("--keep-days", type=int, default=90, help="keep this many days (at least 3)")
    p.set_defaults(func=cmd_prune)
