"""After a broker restart central republishes only the retained state the broker lacks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx

from broker import topics
from broker.local import LocalBroker
from broker.messages import Availability, KioskConfig
from testkit.probe import Probe
from tests.conftest import central_settings, seed_library, start_central

# $SYS counters every second, so the test can read how many packets the broker received.
SYS = "sys_interval 1"
# Central's reconnect: CONNECT and its two SUBSCRIBEs (scans, statuses). A republish of
# the seeded library adds 5 PUBLISH packets (2 configs, 3 availabilities).
RECONNECT_PACKETS = 3
RECEIVED = "$SYS/broker/messages/received"
KEEPALIVE_S = 2
# central/republish.py: what was published within 1.5 keepalives + autosave (5 s) + 2 s
# before the drop may be missing from the broker's save, so it is republished.
WINDOW_S = 1.5 * KEEPALIVE_S + 5 + 2 + 1
KIOSKS = {"KIOSK-A1", "KIOSK-B1"}  # tests/conftest.py seed_library
ITEMS = {"DRILL-01", "SAW-01", "RAKE-01"}


async def _ready_again(admin: httpx.AsyncClient, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if (await admin.get("/ready")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("central did not reconnect")


def _publishes_received(port: int) -> int:
    probe = Probe(port, client_id="sys-probe")
    try:
        probe.subscribe(RECEIVED)
        return int(probe.next(5, topic_suffix="received").payload)
    finally:
        probe.close()


def _retained(port: int) -> tuple[set[str], set[str]]:
    """Kiosk ids with a retained config and item ids with retained availability."""
    probe = Probe(port, client_id="retained-probe")
    kiosks: set[str] = set()
    items: set[str] = set()
    try:
        for kiosk_id in KIOSKS:
            probe.subscribe(topics.config(kiosk_id))
        probe.subscribe(topics.AVAILABILITY_FILTER)
        with contextlib.suppress(TimeoutError):
            while True:
                message = probe.next(1.5)
                if message.topic.endswith("/config"):
                    kiosks.add(KioskConfig.model_validate_json(message.payload).kiosk_id)
                else:
                    items.add(Availability.model_validate_json(message.payload).item_id)
    finally:
        probe.close()
    return kiosks, items


async def test_a_broker_restarted_from_its_save_is_not_sent_the_fleet_state_again(
    tmp_path: Path,
) -> None:
    # After a broker restart every kiosk reconnects at once; retained state the broker
    # kept (it saved our session with it) must not be fanned out to them a second time.
    with LocalBroker(tmp_path / "broker", extra_config=SYS) as broker:
        settings = central_settings(tmp_path, broker, mqtt_keepalive_s=KEEPALIVE_S)
        async with start_central(settings) as central:
            await seed_library(central.admin)
            await asyncio.sleep(WINDOW_S)  # the library is older than the broker's last save
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.start)
            await _ready_again(central.admin)
            await asyncio.sleep(2.5)  # a republish would have landed; $SYS has counted it
            received = await asyncio.to_thread(_publishes_received, broker.port)
            # Nothing republished: none of the 2 configs, none of the 3 availabilities.
            assert received == RECONNECT_PACKETS
            # And the broker still holds every kiosk's config and every item's availability.
            kiosks, items = await asyncio.to_thread(_retained, broker.port)
            assert kiosks == KIOSKS
            assert items == ITEMS


async def test_a_broker_that_lost_its_state_gets_all_retained_state_again(
    tmp_path: Path,
) -> None:
    # A broker restarted without its save (disk lost, new machine) comes back with no
    # session for central and no retained messages: central republishes all of it.
    with LocalBroker(tmp_path / "broker", extra_config=SYS) as broker:
        settings = central_settings(tmp_path, broker, mqtt_keepalive_s=KEEPALIVE_S)
        async with start_central(settings) as central:
            await seed_library(central.admin)
            await asyncio.sleep(WINDOW_S)
            await asyncio.to_thread(broker.stop)
            for saved in (tmp_path / "broker").glob("*.db"):
                saved.unlink()
            await asyncio.to_thread(broker.start)
            await _ready_again(central.admin)
            await asyncio.sleep(1.0)
            kiosks, items = await asyncio.to_thread(_retained, broker.port)
            assert kiosks == KIOSKS
            assert items == ITEMS
