"""The fleet broker keeps every kiosk in its lane: passwords, per-username ACLs, TLS, retirement."""

from __future__ import annotations

import json
import queue
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import auth, topics
from broker.config import SecureListener
from broker.local import LocalBroker
from broker.messages import MAX_PAYLOAD_BYTES
from provisioning import pki
from testkit.secure_broker import CENTRAL_USER, Client, Fleet, connect, fleet_broker

NOT_AUTHORISED = 135  # MQTT 5 reason code, in CONNACK and PUBACK alike
KIOSKS = {"KIOSK-A1": "SHELF-A", "KIOSK-B1": "SHELF-B"}


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with fleet_broker(tmp_path, KIOSKS) as running:
        yield running


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    for client in opened:
        client.close()


def _login(fleet: Fleet, clients: list[Client], user: str, **kw: object) -> Client:
    client, rc = connect(
        fleet.broker.tls_port or 0,
        user,
        fleet.passwords[user],
        ca=fleet.tls_dir / pki.CA_CERT,
        **kw,  # type: ignore[arg-type]
    )
    clients.append(client)
    assert not rc.is_failure, f"{user} could not log in: {rc}"
    return client


def test_anonymous_and_wrong_passwords_are_refused_on_both_listeners(
    fleet: Fleet, clients: list[Client]
) -> None:
    ca = fleet.tls_dir / pki.CA_CERT
    for port, tls in ((fleet.broker.port, None), (fleet.broker.tls_port or 0, ca)):
        for user, password in ((None, None), ("KIOSK-A1", "guess"), ("NOBODY", "x")):
            client, rc = connect(port, user, password, ca=tls)
            clients.append(client)
            assert rc.value == NOT_AUTHORISED, (port, user)


def test_a_kiosk_publishes_scans_only_as_itself(fleet: Fleet, clients: list[Client]) -> None:
    central = _login(fleet, clients, CENTRAL_USER)
    central.subscribe(topics.SCAN_SHARED)
    kiosk = _login(fleet, clients, "KIOSK-A1")
    assert kiosk.publish(topics.scan("KIOSK-A1"), b"mine").value == 0
    assert kiosk.publish(topics.scan("KIOSK-B1"), b"spoofed").value == NOT_AUTHORISED
    assert kiosk.publish(topics.status("KIOSK-B1"), b"offline").value == NOT_AUTHORISED
    assert central.received(0.5) == [(topics.scan("KIOSK-A1"), b"mine")]


def test_only_central_speaks_for_central(fleet: Fleet, clients: list[Client]) -> None:
    kiosk = _login(fleet, clients, "KIOSK-A1")
    for topic in (
        topics.verdict("KIOSK-A1"),
        topics.verdict("KIOSK-B1"),
        topics.config("KIOSK-A1"),
        topics.command("KIOSK-B1"),
        topics.availability("SHELF-A", "DRILL-01"),
        topics.ALERTS,
    ):
        assert kiosk.publish(topic, b"{}").value == NOT_AUTHORISED, topic
    central = _login(fleet, clients, CENTRAL_USER)
    for topic in (topics.verdict("KIOSK-A1"), topics.availability("SHELF-A", "DRILL-01")):
        assert not central.publish(topic, b"{}").is_failure, topic


def test_a_kiosk_reads_only_its_own_messages_and_its_shelf(
    fleet: Fleet, clients: list[Client]
) -> None:
    kiosk = _login(fleet, clients, "KIOSK-A1")
    for topic in (
        topics.verdict("KIOSK-A1"),
        topics.verdict("KIOSK-B1"),
        topics.config("KIOSK-B1"),
        topics.command("KIOSK-A1"),
        topics.shelf_availability("SHELF-A"),
        topics.shelf_availability("SHELF-B"),
        topics.SCAN_FILTER,
    ):
        kiosk.subscribe(topic)
    other = _login(fleet, clients, "KIOSK-B1")
    central = _login(fleet, clients, CENTRAL_USER)
    kiosk.received(0.3)
    other.publish(topics.scan("KIOSK-B1"), b"b-scan")
    for topic in (
        topics.verdict("KIOSK-A1"),
        topics.verdict("KIOSK-B1"),
        topics.config("KIOSK-B1"),
        topics.command("KIOSK-A1"),
        topics.availability("SHELF-A", "DRILL-01"),
        topics.availability("SHELF-B", "SAW-01"),
    ):
        central.publish(topic, b"x")
    got = sorted(topic for topic, _ in kiosk.received(0.5))
    assert got == sorted(
        [
            topics.verdict("KIOSK-A1"),
            topics.command("KIOSK-A1"),
            topics.availability("SHELF-A", "DRILL-01"),
        ]
    )


def test_a_kiosk_cannot_take_over_another_kiosks_session(
    fleet: Fleet, clients: list[Client]
) -> None:
    victim = _login(fleet, clients, "KIOSK-B1", client_id="kiosk-KIOSK-B1")
    # The broker names every client after its username, so this is not a takeover.
    _login(fleet, clients, "KIOSK-A1", client_id="kiosk-KIOSK-B1")
    assert not victim.disconnected.wait(1.0)
    assert not victim.publish(topics.scan("KIOSK-B1"), b"still here").is_failure


def test_tls_needs_the_project_ca(fleet: Fleet, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca"
    pki.init_ca(other_ca)
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(
            fleet.broker.tls_port or 0,
            "KIOSK-A1",
            fleet.passwords["KIOSK-A1"],
            ca=other_ca / pki.CA_CERT,
        )


def test_retiring_a_kiosk_drops_it_at_once_and_keeps_it_out(
    fleet: Fleet, clients: list[Client]
) -> None:
    kiosk = _login(fleet, clients, "KIOSK-A1")
    fleet.retire("KIOSK-A1")
    assert kiosk.disconnected.wait(5.0), "a retired kiosk stayed connected"
    again, rc = connect(
        fleet.broker.tls_port or 0,
        "KIOSK-A1",
        fleet.passwords["KIOSK-A1"],
        ca=fleet.tls_dir / pki.CA_CERT,
    )
    clients.append(again)
    assert rc.value == NOT_AUTHORISED
    # Everyone else carries on.
    _login(fleet, clients, "KIOSK-B1")


def test_client_certificates_name_the_kiosk(tmp_path: Path, clients: list[Client]) -> None:
    with fleet_broker(tmp_path, KIOSKS, client_certs=True) as fleet:
        cert = pki.issue_client(fleet.ca_dir, tmp_path / "kiosk", "KIOSK-A1")
        kiosk, rc = connect(
            fleet.broker.tls_port or 0, None, None, ca=fleet.tls_dir / pki.CA_CERT, cert=cert
        )
        clients.append(kiosk)
        assert not rc.is_failure
        assert not kiosk.publish(topics.scan("KIOSK-A1"), b"ok").is_failure
        assert kiosk.publish(topics.scan("KIOSK-B1"), b"spoofed").value == NOT_AUTHORISED
        with pytest.raises((ssl.SSLError, OSError, queue.Empty)):
            # No certificate: the TLS handshake fails, or the broker hangs up right after it.
            connect(
                fleet.broker.tls_port or 0,
                "KIOSK-A1",
                fleet.passwords["KIOSK-A1"],
                ca=fleet.tls_dir / pki.CA_CERT,
            )


def test_the_development_broker_listens_on_loopback_only(tmp_path: Path) -> None:
    with LocalBroker(tmp_path / "dev") as dev:
        conf = (dev.data_dir / "mosquitto.conf").read_text()
    assert f"listener {dev.port} 127.0.0.1" in conf
    secure = SecureListener(auth_dir=tmp_path / "a", tls_dir=tmp_path / "t")
    from broker.config import secure as render

    text = render(secure, tmp_path)
    assert "allow_anonymous false" in text
    assert "allow_anonymous true" not in text


def test_a_kiosk_is_refused_at_suback_outside_its_lane_shared_subscriptions_included(
    fleet: Fleet, clients: list[Client]
) -> None:
    kiosk = _login(fleet, clients, "KIOSK-A1")
    for topic in (
        topics.SCAN_SHARED,  # central's share group: it would take every other kiosk's scans
        f"$share/thieves/{topics.SCAN_FILTER}",
        f"$share/{topics.SHARE_GROUP}/{topics.ROOT}/#",
        topics.SCAN_FILTER,
        topics.STATUS_FILTER,
        topics.verdict("KIOSK-B1"),
        topics.shelf_availability("SHELF-B"),
        f"{topics.ROOT}/#",
        "#",
        auth.CONTROL_RESPONSE,
    ):
        assert kiosk.subscribe(topic) == NOT_AUTHORISED, topic
    for topic in (
        topics.verdict("KIOSK-A1"),
        topics.config("KIOSK-A1"),
        topics.command("KIOSK-A1"),
        topics.shelf_availability("SHELF-A"),
    ):
        assert kiosk.subscribe(topic) == 1, topic  # granted at QoS 1


def test_a_kiosk_in_centrals_share_group_takes_no_scans(
    fleet: Fleet, clients: list[Client]
) -> None:
    central = _login(fleet, clients, CENTRAL_USER)
    assert central.subscribe(topics.SCAN_SHARED) == 1
    thief = _login(fleet, clients, "KIOSK-A1")
    thief.subscribe(topics.SCAN_SHARED)
    honest = _login(fleet, clients, "KIOSK-B1")
    sent = [f"scan-{n}".encode() for n in range(20)]
    for payload in sent:
        assert honest.publish(topics.scan("KIOSK-B1"), payload).value == 0
    # Every scan reaches central on its first send, none waits for a kiosk's re-send.
    assert sorted(payload for _, payload in central.received(1.0)) == sorted(sent)
    assert thief.received(0.1) == []


def test_a_kiosk_may_not_administer_the_broker(fleet: Fleet, clients: list[Client]) -> None:
    kiosk = _login(fleet, clients, "KIOSK-A1")
    command = json.dumps({"commands": [auth.delete_client("KIOSK-B1")]}).encode()
    assert kiosk.publish(auth.CONTROL, command).value == NOT_AUTHORISED
    _login(fleet, clients, "KIOSK-B1")  # still there


def test_an_oversized_publish_drops_the_sender_and_honest_scans_continue(
    fleet: Fleet, clients: list[Client]
) -> None:
    central = _login(fleet, clients, CENTRAL_USER)
    central.subscribe(topics.SCAN_SHARED)
    flooder = _login(fleet, clients, "KIOSK-A1")
    honest = _login(fleet, clients, "KIOSK-B1")
    flooder.client.publish(topics.scan("KIOSK-A1"), b"x" * 100_000_000, qos=1)
    assert flooder.disconnected.wait(10.0), "the broker took a 100 MB publish"
    # The largest message the contract allows still passes.
    largest = b"y" * MAX_PAYLOAD_BYTES
    assert honest.publish(topics.scan("KIOSK-B1"), largest).value == 0
    assert central.received(1.0) == [(topics.scan("KIOSK-B1"), largest)]
