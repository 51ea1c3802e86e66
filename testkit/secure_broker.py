"""A fleet-configured Mosquitto (dynamic security accounts, TLS) and plain paho clients."""

from __future__ import annotations

import contextlib
import json
import queue
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from broker import auth
from broker.config import SecureListener
from broker.local import LocalBroker
from provisioning import pki

CENTRAL_USER = "CENTRAL-1"


@dataclass
class Fleet:
    """The broker, its CA folder, and the password of every account on it."""

    broker: LocalBroker
    ca_dir: Path
    tls_dir: Path
    auth_dir: Path
    passwords: dict[str, str]
    accounts: dict[str, auth.Account]

    def control(self, *commands: dict[str, object]) -> list[dict[str, object]]:
        """Send dynamic security commands as central does, and return the broker's answers."""
        admin, rc = connect(self.broker.port, CENTRAL_USER, self.passwords[CENTRAL_USER])
        try:
            assert not rc.is_failure, rc
            admin.client.subscribe(auth.CONTROL_RESPONSE, qos=1)
            admin.client.publish(auth.CONTROL, json.dumps({"commands": commands}), qos=1)
            message = admin.messages.get(timeout=5)
            responses: list[dict[str, object]] = json.loads(message.payload)["responses"]
        finally:
            admin.close()
        assert not [r for r in responses if "error" in r], responses
        return responses

    def retire(self, username: str) -> None:
        """What central does when a kiosk is retired: delete its broker user."""
        del self.accounts[username]
        self.control(auth.delete_client(username))


def make_accounts(kiosks: dict[str, str]) -> tuple[dict[str, auth.Account], dict[str, str]]:
    """A central user and one user per ``kiosk id → shelf id``, with fresh passwords."""
    passwords = {CENTRAL_USER: auth.new_password()}
    accounts = {
        CENTRAL_USER: auth.Account(
            CENTRAL_USER, auth.Role.CENTRAL, auth.hash_password(passwords[CENTRAL_USER])
        )
    }
    for kiosk_id, shelf_id in kiosks.items():
        passwords[kiosk_id] = auth.new_password()
        accounts[kiosk_id] = auth.Account(
            kiosk_id, auth.Role.KIOSK, auth.hash_password(passwords[kiosk_id]), shelf_id
        )
    return accounts, passwords


@contextlib.contextmanager
def fleet_broker(
    root: Path, kiosks: dict[str, str], *, client_certs: bool = False
) -> Iterator[Fleet]:
    """A running fleet broker with a fresh CA and the given kiosks enrolled."""
    ca_dir, tls_dir, auth_dir = root / "ca", root / "tls", root / "auth"
    pki.init_ca(ca_dir)
    pki.issue_server(ca_dir, tls_dir, ["localhost", "127.0.0.1"])
    accounts, passwords = make_accounts(kiosks)
    auth.write_seed(auth_dir / auth.DYNSEC_FILE, accounts.values())
    listener = SecureListener(auth_dir=auth_dir, tls_dir=tls_dir, client_certs=client_certs)
    with LocalBroker(root / "broker", secure=listener) as broker:
        yield Fleet(broker, ca_dir, tls_dir, auth_dir, passwords, accounts)


@dataclass
class Client:
    """A paho client on its own thread that records what the broker said to it."""

    client: paho.Client
    connack: queue.Queue[ReasonCode] = field(default_factory=queue.Queue)
    messages: queue.Queue[paho.MQTTMessage] = field(default_factory=queue.Queue)
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    subacks: dict[int, int] = field(default_factory=dict)
    disconnected: threading.Event = field(default_factory=threading.Event)
    acked: threading.Condition = field(default_factory=threading.Condition)

    def publish(self, topic: str, payload: bytes, timeout: float = 5.0) -> ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason."""
        info = self.client.publish(topic, payload, qos=1)
        with self.acked:
            assert self.acked.wait_for(lambda: info.mid in self.pubacks, timeout), "no PUBACK"
            return self.pubacks[info.mid]

    def subscribe(self, topic: str, timeout: float = 5.0) -> int:
        """Subscribe at QoS 1 and return the broker's SUBACK reason code (0x87: refused)."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        with self.acked:
            assert self.acked.wait_for(lambda: mid in self.subacks, timeout), "no SUBACK"
            return self.subacks[mid]

    def received(self, timeout: float) -> list[tuple[str, bytes]]:
        """Everything delivered within ``timeout`` seconds."""
        out = []
        with contextlib.suppress(queue.Empty):
            while True:
                message = self.messages.get(timeout=timeout)
                out.append((message.topic, bytes(message.payload)))
        return out

    def close(self) -> None:
        """Disconnect and stop the thread."""
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    port: int,
    username: str | None,
    password: str | None,
    *,
    client_id: str | None = None,
    ca: Path | None = None,
    cert: pki.Issued | None = None,
    timeout: float = 5.0,
) -> tuple[Client, ReasonCode]:
    """Connect and wait for CONNACK; the client is returned whatever the broker answered."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"probe-{username}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    probe = Client(client)
    if username is not None:
        client.username_pw_set(username, password)
    if ca is not None:
        client.tls_set(
            ca_certs=str(ca),
            certfile=str(cert.cert) if cert else None,
            keyfile=str(cert.key) if cert else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )

    def on_connect(_c: paho.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        probe.connack.put(rc)

    def on_publish(_c: paho.Client, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        with probe.acked:
            probe.pubacks[mid] = rc
            probe.acked.notify_all()

    def on_subscribe(
        _c: paho.Client, _u: object, mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        with probe.acked:
            probe.subacks[mid] = codes[0].value
            probe.acked.notify_all()

    def on_disconnect(_c: paho.Client, _u: object, _f: object, _rc: object, _p: object) -> None:
        probe.disconnected.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_message = lambda _c, _u, message: probe.messages.put(message)
    client.connect("localhost" if ca else "127.0.0.1", port, keepalive=10)
    client.loop_start()
    return probe, probe.connack.get(timeout=timeout)
