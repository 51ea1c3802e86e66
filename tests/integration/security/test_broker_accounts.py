"""Central keeps the broker's accounts in step with its database, live, through $CONTROL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker import auth, topics
from central.dynsec import DynsecControl
from central.fleet import BrokerAccounts
from central.mqtt import CentralLink
from central.storage.sqlite import SqliteStore
from provisioning import pki
from testkit.secure_broker import CENTRAL_USER, Client, Fleet, connect, fleet_broker

NOT_AUTHORISED = 135
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
KIOSKS = {"KIOSK-A1": "SHELF-A", "KIOSK-B1": "SHELF-B"}


@dataclass
class Managed:
    """The fleet broker, central's database of its accounts, and central's manager."""

    fleet: Fleet
    store: SqliteStore
    accounts: BrokerAccounts
    link: CentralLink


@pytest.fixture
async def managed(tmp_path: Path) -> AsyncIterator[Managed]:
    with fleet_broker(tmp_path, KIOSKS) as fleet:
        store = await SqliteStore(tmp_path / "central.db").open()
        await store.migrate()
        for shelf in ("SHELF-A", "SHELF-B", "SHELF-C"):
            await store.add_shelf(shelf, shelf, NOW, "test")
        # The database says what the broker was seeded with.
        for name, account in fleet.accounts.items():
            if account.role is auth.Role.CENTRAL:
                await store.set_central_account(name, account.password_hash, NOW, "test")
            else:
                await store.enrol_kiosk(
                    name, account.shelf_id or "", account.password_hash, NOW, "test"
                )
        link = CentralLink(
            CENTRAL_USER,
            "127.0.0.1",
            fleet.broker.port,
            username=CENTRAL_USER,
            password=fleet.passwords[CENTRAL_USER],
            control_responses=True,
        )
        control = DynsecControl(link.publish, link.connected)
        link.on_control = control.feed
        accounts = BrokerAccounts(store, control=True)
        accounts.attach(control)
        task = asyncio.create_task(link.run())
        try:
            await asyncio.wait_for(link.connected.wait(), 10)
            yield Managed(fleet, store, accounts, link)
        finally:
            await link.close()
            task.cancel()
            await store.close()


def _login(fleet: Fleet, user: str, password: str | None = None) -> tuple[Client, int]:
    client, rc = connect(
        fleet.broker.tls_port or 0,
        user,
        password or fleet.passwords[user],
        ca=fleet.tls_dir / pki.CA_CERT,
    )
    return client, rc.value


async def test_a_disabled_kiosk_is_dropped_and_kept_out_until_enabled(managed: Managed) -> None:
    fleet = managed.fleet
    kiosk, rc = await asyncio.to_thread(_login, fleet, "KIOSK-A1")
    neighbour, _ = await asyncio.to_thread(_login, fleet, "KIOSK-B1")
    try:
        assert rc == 0
        assert await managed.accounts.disable("KIOSK-A1")
        assert await asyncio.to_thread(kiosk.disconnected.wait, 5.0), "it stayed connected"
        again, rc = await asyncio.to_thread(_login, fleet, "KIOSK-A1")
        again.close()
        assert rc == NOT_AUTHORISED
        # Its neighbour carries on, and a sync (another instance, the timer) keeps it out.
        assert not neighbour.disconnected.is_set()
        await managed.accounts.sync()
        again, rc = await asyncio.to_thread(_login, fleet, "KIOSK-A1")
        again.close()
        assert rc == NOT_AUTHORISED

        assert await managed.accounts.enable("KIOSK-A1")
        back, rc = await asyncio.to_thread(_login, fleet, "KIOSK-A1")
        back.close()
        assert rc == 0
        assert not await managed.accounts.disable("NO-SUCH-KIOSK")
    finally:
        kiosk.close()
        neighbour.close()


async def test_sync_applies_enrolment_rotation_retirement_and_shelf_changes(
    managed: Managed,
) -> None:
    fleet, store, accounts = managed.fleet, managed.store, managed.accounts
    assert not await accounts.sync()  # the broker already matches the database
    # Enrol: only the enrolment holds the password in clear, and pushes it.
    new = auth.new_password()
    await store.enrol_kiosk("KIOSK-C1", "SHELF-C", auth.hash_password(new), NOW, "test")
    assert await accounts.sync(passwords={"KIOSK-C1": new})
    fresh, rc = await asyncio.to_thread(_login, fleet, "KIOSK-C1", new)
    assert rc == 0
    assert fresh.subscribe(topics.shelf_availability("SHELF-C")) == 1
    assert fresh.subscribe(topics.shelf_availability("SHELF-A")) == NOT_AUTHORISED
    fresh.close()

    # Re-enrol: the old password is dropped at once and refused.
    kiosk, _ = await asyncio.to_thread(_login, fleet, "KIOSK-A1")
    rotated = auth.new_password()
    await store.enrol_kiosk(
        "KIOSK-A1", "SHELF-A", auth.hash_password(rotated), NOW, "test", rotate=True
    )
    await accounts.sync(passwords={"KIOSK-A1": rotated})
    assert await asyncio.to_thread(kiosk.disconnected.wait, 5.0)
    kiosk.close()
    old, rc = await asyncio.to_thread(_login, fleet, "KIOSK-A1")
    old.close()
    assert rc == NOT_AUTHORISED
    kiosk, rc = await asyncio.to_thread(_login, fleet, "KIOSK-A1", rotated)
    assert rc == 0

    # Shelf change: the kiosk's role follows, without a reconnect.
    await store.configure_kiosk(
        "KIOSK-A1", lambda c: c.model_copy(update={"shelf_id": "SHELF-B"}), NOW, "test"
    )
    assert await accounts.sync()
    assert kiosk.subscribe(topics.shelf_availability("SHELF-B")) == 1
    assert kiosk.subscribe(topics.shelf_availability("SHELF-A")) == NOT_AUTHORISED
    assert not kiosk.disconnected.is_set()

    # Retire: the user goes, and the kiosk with it.
    await store.retire_kiosk("KIOSK-A1", NOW, "test", "stolen")
    assert await accounts.sync()
    assert await asyncio.to_thread(kiosk.disconnected.wait, 5.0), "a retired kiosk stayed"
    kiosk.close()
    gone, rc = await asyncio.to_thread(_login, fleet, "KIOSK-A1", rotated)
    gone.close()
    assert rc == NOT_AUTHORISED
    assert not await accounts.sync()  # and nothing drifts afterwards


async def test_an_enrolment_wave_bigger_than_one_packet_reaches_the_broker(
    managed: Managed,
) -> None:
    # Thirty kiosks' roles and users are far more than the broker's packet limit in one
    # command batch; a batch that big would get central itself disconnected.
    passwords = {f"KIOSK-W{n:02d}": auth.new_password() for n in range(30)}
    for kiosk_id, password in passwords.items():
        hashed = auth.hash_password(password)
        await managed.store.enrol_kiosk(kiosk_id, "SHELF-C", hashed, NOW, "test")
    assert await managed.accounts.sync(passwords=passwords)
    assert managed.link.connected.is_set()
    for kiosk_id in ("KIOSK-W00", "KIOSK-W29"):
        client, rc = await asyncio.to_thread(_login, managed.fleet, kiosk_id, passwords[kiosk_id])
        client.close()
        assert rc == 0, kiosk_id
    assert not await managed.accounts.sync()


async def test_a_quarantined_kiosk_is_kept_out_until_its_deadline_by_any_instance(
    managed: Managed,
) -> None:
    fleet = managed.fleet
    clock = [NOW]
    # Another instance, on the same clock: the one that lets the kiosk back in need not be
    # the one that shut it out (that one may have died since).
    other = BrokerAccounts(managed.store, control=True, now=lambda: clock[0])
    control = DynsecControl(managed.link.publish, managed.link.connected)
    other.attach(control)
    managed.link.on_control = control.feed
    kiosk, rc = await asyncio.to_thread(_login, fleet, "KIOSK-A1")
    try:
        assert rc == 0
        assert await other.quarantine("KIOSK-A1", NOW + timedelta(minutes=15))
        assert await asyncio.to_thread(kiosk.disconnected.wait, 5.0), "it stayed connected"
        # Before the deadline a reconciliation keeps it out.
        clock[0] = NOW + timedelta(minutes=14)
        await other.sync()
        again, rc = await asyncio.to_thread(_login, fleet, "KIOSK-A1")
        again.close()
        assert rc == NOT_AUTHORISED
        # After it, the next reconciliation lets it back in.
        clock[0] = NOW + timedelta(minutes=16)
        assert await other.sync()
        back, rc = await asyncio.to_thread(_login, fleet, "KIOSK-A1")
        back.close()
        assert rc == 0
        # A kiosk an operator disabled by hand carries no deadline: central never lets it in.
        assert await other.disable("KIOSK-B1")
        clock[0] = NOW + timedelta(days=30)
        await other.sync()
        held, rc = await asyncio.to_thread(_login, fleet, "KIOSK-B1")
        held.close()
        assert rc == NOT_AUTHORISED
    finally:
        kiosk.close()
