"""``cs-admin kiosks`` and ``cs-admin kiosk show|config|identify``: watch and set up the fleet."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from provisioning.api_client import call
from provisioning.errors import UsageError
from provisioning.output import safe, show, table

_GROUPS = ("pins", "camera", "feedback")
_SOUNDS = ("all", "refusals", "off")
_PINS = ("red", "green", "blue", "buzzer", "button")
# What --reset accepts: a whole group, or one setting in it.
_RESETTABLE = (
    "pins",
    *(f"pins.{p}" for p in _PINS),
    "camera",
    "camera.size",
    "camera.fps",
    "camera.exposure_us",
    "camera.focus",
    "feedback",
    "feedback.sound",
)


def _when(value: Any) -> str | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _update(update: dict[str, Any] | None) -> str | None:
    """``0.2.0 rolled_back CRASH_LOOP``: the newest update offered, where it stands, why."""
    if not update:
        return None
    return " ".join(str(update[k]) for k in ("version", "state", "reason") if update.get(k))


def _row(kiosk: dict[str, Any]) -> dict[str, Any]:
    """One kiosk as a table row for people."""
    camera = kiosk.get("camera_ok")
    return {
        "kiosk_id": kiosk["kiosk_id"],
        "shelf_id": kiosk["shelf_id"],
        "state": kiosk["state"],
        "last_seen": _when(kiosk.get("last_seen")),
        "software": kiosk.get("software_version"),
        "update": _update(kiosk.get("update")),
        "config": kiosk["config_version"],
        "running": kiosk.get("running_config_version"),
        "outbox": kiosk.get("outbox_depth"),
        "camera": None if camera is None else ("ok" if camera else "FAULT"),
        "fps": kiosk.get("camera_fps"),
        "decode_ms": kiosk.get("decode_ms"),
        "blocked": _when(kiosk.get("blocked_until")) if kiosk.get("blocked") else None,
        "retired": "yes" if kiosk.get("retired") else None,
    }


_COLUMNS = list(_row({"kiosk_id": "", "shelf_id": "", "state": "", "config_version": 0}))


def cmd_kiosks(args: argparse.Namespace) -> None:
    """List kiosks: presence, versions, outbox, camera health, blocked, retired."""
    kiosks = call(args, "GET", "/kiosks")
    if args.json:
        show(args, kiosks)
    else:
        print(table([_row(k) for k in kiosks], _COLUMNS))


def _settings(config: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        {"field": "shelf_id", "value": config["shelf_id"]},
        {"field": "session_timeout_s", "value": config["session_timeout_s"]},
        {"field": "config_version", "value": config["config_version"]},
    ]
    for group in ("pins", "camera", "feedback"):
        for name, value in (config.get(group) or {}).items():
            if value is not None:
                shown = "x".join(map(str, value)) if isinstance(value, list) else value
                rows.append({"field": f"{group}.{name}", "value": shown})
    return rows


def cmd_show(args: argparse.Namespace) -> None:
    """One kiosk: how it is, and the configuration central holds for it."""
    kiosk = call(args, "GET", f"/kiosks/{args.kiosk_id}")
    if args.json:
        show(args, kiosk)
        return
    rows = [{"field": k, "value": v} for k, v in _row(kiosk).items() if k != "kiosk_id"]
    rows.insert(0, {"field": "kiosk_id", "value": kiosk["kiosk_id"]})
    if kiosk.get("config_problem"):
        rows.append({"field": "config_problem", "value": kiosk["config_problem"]})
    if kiosk.get("return_point"):
        rows.append({"field": "return_point", "value": "yes (any shelf's returns)"})
    rows += [r for r in _settings(kiosk["config"]) if r["field"].split(".")[0] in _GROUPS]
    print(table(rows, ["field", "value"]))


def _size(text: str) -> list[int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 640x480")
    return [int(width), int(height)]


def _pins(text: str) -> dict[str, int]:
    pins = {}
    for pair in text.split(","):
        name, sep, value = pair.partition("=")
        if not sep or name not in _PINS or not value.isdigit():
            raise argparse.ArgumentTypeError(
                f"{pair!r} is not NAME=GPIO with NAME one of {', '.join(_PINS)}"
            )
        pins[name] = int(value)
    return pins


def _patch(args: argparse.Namespace) -> dict[str, Any]:
    """The PATCH body the options ask for."""
    body: dict[str, Any] = {}
    if args.shelf is not None:
        body["shelf_id"] = args.shelf
    if args.session_timeout is not None:
        body["session_timeout_s"] = args.session_timeout
    if args.pins:
        body["pins"] = args.pins
    camera = {
        key: value
        for key, value in (
            ("size", args.camera_size),
            ("fps", args.camera_fps),
            ("exposure_us", args.camera_exposure_us),
            ("focus", args.camera_focus),
        )
        if value is not None
    }
    if camera:
        body["camera"] = camera
    if args.sound is not None:
        body["feedback"] = {"sound": args.sound}
    if args.return_point is not None:
        body["return_point"] = args.return_point
    for name in args.reset:
        group, _, field = name.partition(".")
        if field:
            if body.get(group, {}) is None:
                continue  # the whole group is reset already
            body.setdefault(group, {})[field] = None
        else:
            body[group] = None
    if not body:
        raise UsageError("nothing to change: give at least one option (see --help)")
    return body


def cmd_config(args: argparse.Namespace) -> None:
    """Change a kiosk's configuration; the kiosk applies it at once, without a restart."""
    config = call(args, "PATCH", f"/kiosks/{args.kiosk_id}/config", _patch(args))
    if args.json:
        show(args, config)
    else:
        print(table(_settings(config), ["field", "value"]))


def cmd_identify(args: argparse.Namespace) -> None:
    """Make a kiosk flash white and beep so it can be found on the shelves."""
    sent = call(args, "POST", f"/kiosks/{args.kiosk_id}/identify")
    if args.json:
        show(args, sent)
        return
    where = "" if sent["online"] else " (not online now: it flashes when it reconnects)"
    print(safe(f"{sent['kiosk_id']}: identify sent{where}"))


def register(sub: Any, kiosk: Any) -> None:
    """Add ``kiosks`` to cs-admin's subcommands and ``show|config|identify`` to ``kiosk``."""
    sub.add_parser("kiosks", help=cmd_kiosks.__doc__, description=cmd_kiosks.__doc__).set_defaults(
        func=cmd_kiosks
    )
    register_kiosk(kiosk)


def register_kiosk(sub: Any) -> None:
    """Add ``show``, ``config`` and ``identify`` under ``cs-admin kiosk``."""
    p = sub.add_parser("show", help=cmd_show.__doc__, description=cmd_show.__doc__)
    p.add_argument("kiosk_id")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("config", help=cmd_config.__doc__, description=cmd_config.__doc__)
    p.add_argument("kiosk_id")
    p.add_argument("--shelf", help="the shelf it serves (its availability follows)")
    p.add_argument("--session-timeout", type=float, help="idle seconds before a session ends")
    p.add_argument(
        "--pins", type=_pins, help="GPIO (BCM) numbers, e.g. red=5,green=6,blue=13,buzzer=19"
    )
    p.add_argument("--camera-size", type=_size, help="scan stream size, e.g. 640x480")
    p.add_argument("--camera-fps", type=float, help="frames per second")
    p.add_argument("--camera-exposure-us", type=int, help="fixed exposure in µs (Pi camera)")
    p.add_argument("--camera-focus", type=float, help="fixed focus in dioptres (Pi camera 3)")
    p.add_argument(
        "--sound", choices=_SOUNDS, help="when the buzzer sounds: all, refusals only, or off"
    )
    p.add_argument(
        "--return-point",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="take returns of every shelf's items (a desk, a drop box), or only its own shelf's",
    )
    p.add_argument(
        "--reset",
        action="append",
        default=[],
        choices=_RESETTABLE,
        metavar="SETTING",
        help="give a setting back to the kiosk's own (repeatable): " + ", ".join(_RESETTABLE),
    )
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("identify", help=cmd_identify.__doc__, description=cmd_identify.__doc__)
    p.add_argument("kiosk_id")
    p.set_defaults(func=cmd_identify)
