"""A secured fleet for tests: fleet broker, a central managing its accounts, kiosk processes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import segno
from PIL import Image

from broker import auth
from broker.config import SecureListener
from broker.local import LocalBroker, free_port
from central.settings import CentralSettings
from provisioning import pki
from tests.conftest import RunningCentral, start_central

CENTRAL_USER = "CENTRAL-1"


@dataclass
class SecureFleet:
    """The running fleet broker and central, and where their secrets live."""

    broker: LocalBroker
    central: RunningCentral
    ca_dir: Path
    tls_dir: Path
    token_file: Path

    @property
    def url(self) -> str:
        """Central's admin API."""
        return str(self.central.admin.base_url).rstrip("/")


@contextlib.asynccontextmanager
async def secure_fleet(root: Path, *, https: bool = False) -> AsyncIterator[SecureFleet]:
    """A fleet broker seeded with central's user, and a central that manages the rest live."""
    ca_dir, tls_dir, auth_dir = root / "ca", root / "tls", root / "auth"
    pki.init_ca(ca_dir)
    pki.issue_server(ca_dir, tls_dir, ["localhost", "127.0.0.1"])
    listener = SecureListener(auth_dir=auth_dir, tls_dir=tls_dir)
    central_password = auth.new_password()
    # The broker's first account, as an operator seeds it: central's own user.
    seed = auth.Account(CENTRAL_USER, auth.Role.CENTRAL, auth.hash_password(central_password))
    auth.write_seed(auth_dir / auth.DYNSEC_FILE, [seed])
    with LocalBroker(root / "broker", secure=listener) as broker:
        assert broker.secure is not None
        assert broker.tls_port is not None
        extra = {}
        if https:
            extra = {
                "admin_tls_cert": tls_dir / pki.SERVER_CERT,
                "admin_tls_key": tls_dir / pki.SERVER_KEY,
            }
        settings = CentralSettings(
            instance_id=CENTRAL_USER,
            data_dir=root / "central",
            mqtt_port=broker.port,
            mqtt_username=CENTRAL_USER,
            mqtt_password=central_password,
            admin_port=free_port(),
            broker_control=True,
            broker_auth_dir=auth_dir,
            broker_public_host="localhost",
            broker_public_port=broker.tls_port,
            broker_ca_file=tls_dir / pki.CA_CERT,
            **extra,  # type: ignore[arg-type]
        )
        async with start_central(settings, ca=tls_dir / pki.CA_CERT if https else None) as central:
            yield SecureFleet(broker, central, ca_dir, tls_dir, root / "central" / "admin.token")


def code_images(root: Path, codes: dict[str, str]) -> dict[str, Path]:
    """Each code as a QR PNG a camera can read, plus a ``blank`` frame."""
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, code in codes.items():
        out[name] = root / f"{name}.png"
        segno.make_qr(code, error="m").save(str(out[name]), scale=5, border=4)
    out["blank"] = root / "blank.png"
    Image.fromarray(np.full((480, 640), 200, dtype=np.uint8)).save(out["blank"])
    return out


def kiosk_from_bundle(
    state: Path, bundle_dir: Path | None, frames: list[Path], log: Path, **env_extra: str
) -> subprocess.Popen[bytes]:
    """``python -m kiosk`` knowing nothing but where its bundle, state and camera are."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CS_KIOSK_")}
    env |= {
        "CS_KIOSK_STATE_DIR": str(state),
        "CS_KIOSK_CAMERA": json.dumps(
            {"type": "replay", "paths": [str(f) for f in frames], "loop": True}
        ),
        "CS_KIOSK_PINS": json.dumps({"mock": True}),
        **env_extra,
    }
    if bundle_dir is not None:
        env["CS_KIOSK_BUNDLE_DIR"] = str(bundle_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "kiosk"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )
