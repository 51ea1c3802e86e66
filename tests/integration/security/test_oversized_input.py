"""A 100 MB publish never reaches central: the broker drops the sender, honest scans go on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broker import topics
from broker.local import LocalBroker
from testkit.probe import Probe
from testkit.processes import CentralProcess, admin_client
from testkit.secure_broker import connect
from tests.conftest import central_settings
from tests.support.scans import ask, scan

HUGE = 100_000_000


def resident_kib(central: CentralProcess) -> int:
    """Central's resident memory now (VmRSS), in KiB."""
    assert central.process is not None
    for line in Path(f"/proc/{central.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def seed(central: CentralProcess) -> str:
    """Two kiosks on a shelf with one item; its label."""
    with admin_client(central) as admin:
        admin.post("/shelves", json={"shelf_id": "SHELF-A", "name": "Tools"}).raise_for_status()
        for kiosk_id in ("KIOSK-A1", "KIOSK-B1"):
            body = {"kiosk_id": kiosk_id, "shelf_id": "SHELF-A"}
            admin.post("/kiosks", json=body).raise_for_status()
        body = {"item_id": "DRILL-01", "shelf_id": "SHELF-A", "name": "Drill"}
        admin.post("/items", json=body).raise_for_status()
        return str(admin.get("/items/DRILL-01/label").json()["code"])


@pytest.mark.slow
async def test_a_100_mb_scan_is_refused_by_the_broker_and_central_memory_stays_flat(
    tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    central = CentralProcess(central_settings(tmp_path, broker)).start()
    try:
        label = await asyncio.to_thread(seed, central)
        probe.subscribe(topics.VERDICT_FILTER)
        first = await ask(probe, scan("KIOSK-B1", label))  # a label outside a session
        before = resident_kib(central)

        flooder, rc = connect(broker.port, None, None, client_id="KIOSK-A1")
        assert not rc.is_failure
        flooder.client.publish(topics.scan("KIOSK-A1"), b"x" * HUGE, qos=1)
        assert flooder.disconnected.wait(20.0), "the broker took a 100 MB publish"
        flooder.close()

        # The honest kiosk's next scan is decided as before.
        assert (await ask(probe, scan("KIOSK-B1", label))).reason is first.reason
        grown = resident_kib(central) - before
        print(f"central RSS {before} KiB before, grew {grown} KiB")  # docs/security.md
        assert grown < 16 * 1024, f"central grew {grown} KiB"
    finally:
        central.stop()
