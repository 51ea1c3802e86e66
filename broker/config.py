"""Renders the Mosquitto configuration: the loopback development broker or the fleet broker."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from broker import topics
from broker.auth import DYNSEC_FILE
from broker.messages import MAX_PAYLOAD_BYTES

# The broker disconnects any client sending a bigger packet, before buffering it: the
# largest payload central parses (broker.messages.MAX_PAYLOAD_BYTES) in a PUBLISH on the
# longest topic of the contract, with room for a few MQTT 5 properties. Anything larger
# is an attack or a bug, and a 100 MB publish never reaches central's memory.
_LONGEST_ID = "X" * 32
LONGEST_TOPIC = topics.availability(_LONGEST_ID, _LONGEST_ID)
PUBLISH_OVERHEAD = 5 + 2 + 2 + 64  # fixed header, topic length, packet id, properties
MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + len(LONGEST_TOPIC) + PUBLISH_OVERHEAD

DYNSEC_PLUGIN = "mosquitto_dynamic_security.so"


def dynsec_plugin() -> Path:
    """Where this machine's Mosquitto keeps its dynamic security plugin (Debian's path)."""
    found = sorted(Path("/usr/lib").glob(f"*/{DYNSEC_PLUGIN}"))
    return found[0] if found else Path("/usr/lib/x86_64-linux-gnu") / DYNSEC_PLUGIN


@dataclass(frozen=True, slots=True)
class SecureListener:
    """Where the fleet broker listens and which files prove who is who."""

    auth_dir: Path  # the dynamic security plugin's JSON file (seeded by central)
    tls_dir: Path  # ca.pem, server.pem, server.key from `cs-admin ca`
    tls_port: int = 8883
    tls_bind: str = "0.0.0.0"  # noqa: S104 - kiosks reach it over the network, TLS only
    local_port: int | None = 1883  # plain loopback listener for a central on this host
    client_certs: bool = False  # require a client certificate whose CN is the username
    pid_file: Path | None = None
    plugin: Path = field(default_factory=dynsec_plugin)


def _run_as() -> str:
    # Started as root, mosquitto drops to the "mosquitto" user unless told otherwise; the
    # throwaway brokers of tests and the demo keep their files in the caller's own folders.
    return f"user {getpass.getuser()}" if os.geteuid() == 0 else ""


def development(port: int, data_dir: Path) -> str:
    """The development broker: anonymous, on loopback only."""
    template = resources.files("broker.mosquitto").joinpath("dev.conf").read_text()
    text = template.format(port=port, data_dir=data_dir, max_packet=MAX_PACKET_BYTES)
    return text + _run_as() + "\n"


def secure(listener: SecureListener, data_dir: Path, *, run_as_caller: bool = False) -> str:
    """The fleet broker's configuration."""
    template = resources.files("broker.mosquitto").joinpath("secure.conf").read_text()
    client_certs = (
        "require_certificate true\nuse_identity_as_username true"
        if listener.client_certs
        else "require_certificate false"
    )
    local = (
        f"listener {listener.local_port} 127.0.0.1\nprotocol mqtt\nuse_username_as_clientid true"
        if listener.local_port is not None
        else ""
    )
    return template.format(
        plugin=listener.plugin,
        dynsec_file=listener.auth_dir / DYNSEC_FILE,
        max_packet=MAX_PACKET_BYTES,
        tls_dir=listener.tls_dir,
        tls_port=listener.tls_port,
        tls_bind=listener.tls_bind,
        client_cert_lines=client_certs,
        local_listener=local,
        data_dir=data_dir,
        user_line=_run_as() if run_as_caller else "",
        pid_line=f"pid_file {listener.pid_file}" if listener.pid_file else "",
    )
