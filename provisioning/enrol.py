"""Who is in the fleet: ``cs-admin kiosk enrol|retire|enrol-code``, ``ca``, ``broker-config``."""

from __future__ import annotations

import argparse
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker.bundle import BUNDLE_FILE
from broker.config import SecureListener, dynsec_plugin, secure
from provisioning import pki
from provisioning.api_client import call
from provisioning.errors import UsageError
from provisioning.output import show

BUNDLE_FOLDER = "communityshare"


def write_bundle(bundle: dict[str, Any], out: Path) -> Path:
    """Write the bundle as a folder (``out/bundle.json``) or an archive (``out.tar.gz``)."""
    text = json.dumps(bundle, indent=2)
    if out.name.endswith((".tar.gz", ".tgz")):
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
            data = text.encode()
            info = tarfile.TarInfo(f"{BUNDLE_FOLDER}/{BUNDLE_FILE}")
            info.size, info.mode = len(data), 0o600
            archive.addfile(info, io.BytesIO(data))
        return out
    out.mkdir(parents=True, exist_ok=True)
    path = out / BUNDLE_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def _summary(bundle: dict[str, Any], where: Path | None) -> dict[str, Any]:
    # Never echo the password: the bundle file is the one place it is written.
    return {
        "kiosk_id": bundle["kiosk_id"],
        "shelf_id": bundle["shelf_id"],
        "broker": f"{bundle['mqtt_host']}:{bundle['mqtt_port']}",
        "tls": bool(bundle.get("ca_pem")),
        "bundle": str(where) if where else None,
    }


def cmd_enrol(args: argparse.Namespace) -> None:
    """Enrol a kiosk for a shelf and write its first-boot bundle (--rotate re-keys it)."""
    body = {"shelf_id": args.shelf, "rotate": args.rotate}
    if args.session_timeout is not None:
        body["session_timeout_s"] = args.session_timeout
    bundle = call(args, "POST", f"/kiosks/{args.kiosk_id}/enrol", body)
    where = write_bundle(bundle, Path(args.out))
    show(args, _summary(bundle, where), ["kiosk_id", "shelf_id", "broker", "tls", "bundle"])


def cmd_retire(args: argparse.Namespace) -> None:
    """Retire a kiosk: its broker login stops working at once; its history stays."""
    show(
        args,
        call(args, "POST", f"/kiosks/{args.kiosk_id}/retire", {"reason": args.reason}),
        ["kiosk_id", "retired"],
    )


def cmd_enrol_code(args: argparse.Namespace) -> None:
    """A one-time enrolment QR for a new kiosk to claim its identity by camera."""
    body: dict[str, Any] = {"kiosk_id": args.kiosk_id, "shelf_id": args.shelf}
    if args.ttl is not None:
        body["ttl_s"] = args.ttl
    issued = call(args, "POST", "/enrolments", body)
    if args.out:
        import segno

        segno.make_qr(issued["code"], error="m").save(args.out, scale=8, border=4)
    show(args, issued, ["kiosk_id", "shelf_id", "expires_at", "code"])


def _pki(args: argparse.Namespace, make: Callable[[], pki.Issued]) -> None:
    try:
        issued = make()
    except pki.PkiError as exc:
        raise UsageError(str(exc)) from exc
    show(args, {"cert": str(issued.cert), "key": str(issued.key)}, ["cert", "key"])


def cmd_ca_init(args: argparse.Namespace) -> None:
    """Create the project's certificate authority in a folder kept off the servers."""
    _pki(args, lambda: pki.init_ca(Path(args.ca_dir)))


def cmd_ca_server(args: argparse.Namespace) -> None:
    """A server certificate (broker or central HTTPS) for the given host names and IPs."""
    _pki(args, lambda: pki.issue_server(Path(args.ca_dir), Path(args.out), args.host))


def cmd_ca_client(args: argparse.Namespace) -> None:
    """A client certificate for a kiosk (its common name is the kiosk id)."""
    _pki(args, lambda: pki.issue_client(Path(args.ca_dir), Path(args.out), args.kiosk_id))


def cmd_broker_config(args: argparse.Namespace) -> None:
    """Print the fleet broker's Mosquitto configuration (dynamic security accounts, TLS)."""
    listener = SecureListener(
        auth_dir=Path(args.auth_dir),
        tls_dir=Path(args.tls_dir),
        tls_port=args.tls_port,
        local_port=None if args.no_local else args.local_port,
        client_certs=args.client_certs,
        pid_file=Path(args.pid_file) if args.pid_file else None,
        plugin=Path(args.plugin) if args.plugin else dynsec_plugin(),
    )
    print(secure(listener, Path(args.data_dir)), end="")


def register(sub: Any, kiosk: Any) -> None:
    """Add these commands to ``cs-admin`` and its ``kiosk`` group."""
    p = kiosk.add_parser("enrol", help=cmd_enrol.__doc__, description=cmd_enrol.__doc__)
    p.add_argument("kiosk_id")
    p.add_argument("--shelf", required=True, help="the shelf it serves")
    p.add_argument("--session-timeout", type=float, help="idle seconds before a session ends")
    p.add_argument("--rotate", action="store_true", help="re-enrol: new password, old refused")
    p.add_argument("--out", required=True, help="bundle folder, or FILE.tar.gz")
    p.set_defaults(func=cmd_enrol)
    p = kiosk.add_parser("retire", help=cmd_retire.__doc__, description=cmd_retire.__doc__)
    p.add_argument("kiosk_id")
    p.add_argument("--reason", required=True, help="why, for the audit log")
    p.set_defaults(func=cmd_retire)
    p = kiosk.add_parser(
        "enrol-code", help=cmd_enrol_code.__doc__, description=cmd_enrol_code.__doc__
    )
    p.add_argument("kiosk_id", help="the id the new kiosk will take")
    p.add_argument("--shelf", required=True, help="the shelf it will serve")
    p.add_argument("--ttl", type=int, help="seconds the code works (default 900)")
    p.add_argument("--out", help="write the QR as .png or .svg")
    p.set_defaults(func=cmd_enrol_code)

    ca = sub.add_parser("ca", help="the project's certificate authority")
    ca_sub = ca.add_subparsers(dest="ca_command", required=True)
    p = ca_sub.add_parser("init", help=cmd_ca_init.__doc__, description=cmd_ca_init.__doc__)
    p.add_argument("ca_dir")
    p.set_defaults(func=cmd_ca_init)
    p = ca_sub.add_parser("server", help=cmd_ca_server.__doc__, description=cmd_ca_server.__doc__)
    p.add_argument("ca_dir")
    p.add_argument("--host", action="append", required=True, help="host name or IP (repeat)")
    p.add_argument("--out", required=True, help="folder for server.pem, server.key, ca.pem")
    p.set_defaults(func=cmd_ca_server)
    p = ca_sub.add_parser("client", help=cmd_ca_client.__doc__, description=cmd_ca_client.__doc__)
    p.add_argument("ca_dir")
    p.add_argument("kiosk_id")
    p.add_argument("--out", required=True, help="folder for KIOSK.pem and KIOSK.key")
    p.set_defaults(func=cmd_ca_client)

    p = sub.add_parser(
        "broker-config", help=cmd_broker_config.__doc__, description=cmd_broker_config.__doc__
    )
    p.add_argument(
        "--auth-dir",
        default="/etc/mosquitto/communityshare",
        help="folder of the dynamic security file (central seeds it, the broker saves it)",
    )
    p.add_argument("--tls-dir", default="/etc/mosquitto/communityshare/tls")
    p.add_argument("--data-dir", default="/var/lib/mosquitto")
    p.add_argument("--tls-port", type=int, default=8883)
    p.add_argument("--local-port", type=int, default=1883)
    p.add_argument("--no-local", action="store_true", help="no loopback listener for central")
    p.add_argument("--client-certs", action="store_true", help="require client certificates")
    p.add_argument("--pid-file", help="where mosquitto writes its pid")
    p.add_argument("--plugin", help="mosquitto_dynamic_security.so (default: found under /usr/lib)")
    p.set_defaults(func=cmd_broker_config)
