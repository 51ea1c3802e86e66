"""Central SIGKILLed mid-load: no scan lost, none applied twice, the database consistent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from broker import topics
from broker.local import LocalBroker, free_port
from broker.messages import CodeScan, Verdict, encode
from testkit.consistency import consistency
from testkit.probe import Probe
from testkit.processes import CentralProcess, admin_client
from tests.conftest import backend_settings
from tests.support.scans import scan

SESSION_KIOSKS = [f"KIOSK-S{n}" for n in range(4)]
RETURN_KIOSKS = [f"KIOSK-R{n}" for n in range(4)]
ITEMS = [f"ITEM-{n:03d}" for n in range(40)]
ROUNDS = 15  # 40 checkouts + 40 returns a round: 1,200 scans


def seed(central: CentralProcess) -> tuple[dict[str, str], dict[str, str]]:
    """The library; the pass code per session kiosk and the label code per item."""
    with admin_client(central) as admin:
        admin.post("/shelves", json={"shelf_id": "SHELF-A", "name": "Tools"}).raise_for_status()
        for kiosk_id in SESSION_KIOSKS + RETURN_KIOSKS:
            body = {"kiosk_id": kiosk_id, "shelf_id": "SHELF-A", "session_timeout_s": 3600}
            admin.post("/kiosks", json=body).raise_for_status()
        for item_id in ITEMS:
            body = {"item_id": item_id, "shelf_id": "SHELF-A", "name": item_id}
            admin.post("/items", json=body).raise_for_status()
        passes = {}
        for n, kiosk_id in enumerate(SESSION_KIOSKS):
            member = {"member_id": f"M-{n}", "name": f"Member {n}", "checkout_limit": 100}
            admin.post("/members", json=member).raise_for_status()
            passes[kiosk_id] = admin.post(f"/members/M-{n}/passes", json={"ttl_s": 3600}).json()[
                "code"
            ]
        labels = {i: admin.get(f"/items/{i}/label").json()["code"] for i in ITEMS}
    return passes, labels


def collect(probe: Probe, want: set[str], within: float) -> dict[str, list[Verdict]]:
    """Every verdict seen until each event in ``want`` has one (or time runs out)."""
    seen: dict[str, list[Verdict]] = {}
    deadline = time.monotonic() + within
    while not want.issubset(seen) and time.monotonic() < deadline:
        try:
            received = probe.next(max(0.1, deadline - time.monotonic()), topic_suffix="/verdict")
        except TimeoutError:
            break
        verdict = Verdict.model_validate_json(received.payload)
        seen.setdefault(verdict.event_id, []).append(verdict)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "instances"), [("sqlite", 1), ("postgres", 1), ("postgres", 2)]
)
async def test_kill_9_mid_load_loses_and_doubles_nothing(
    backend: str, instances: int, tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    async with backend_settings(backend, tmp_path, broker, batch_max=64) as first:
        settings = [first] + [
            first.model_copy(
                update={"instance_id": f"{first.instance_id}-{n}", "admin_port": free_port()}
            )
            for n in range(1, instances)
        ]
        centrals = [CentralProcess(s).start() for s in settings]
        victim = centrals[-1]
        try:
            passes, labels = await asyncio.to_thread(seed, centrals[0])
            probe.subscribe(topics.VERDICT_FILTER)
            opening = [scan(k, code) for k, code in passes.items()]
            for event in opening:
                probe.publish(topics.scan(event.kiosk_id), encode(event))
            opened = await asyncio.to_thread(collect, probe, {e.event_id for e in opening}, 20)
            assert {v[0].reason.value for v in opened.values()} == {"SESSION_OPENED"}

            load: list[CodeScan] = []
            for _ in range(ROUNDS):
                for n, item in enumerate(ITEMS):
                    load.append(scan(SESSION_KIOSKS[n % 4], labels[item]))
                for n, item in enumerate(ITEMS):
                    load.append(scan(RETURN_KIOSKS[n % 4], labels[item]))
            kill_at = {len(load) * k // 4 for k in (1, 2, 3)}
            for index, event in enumerate(load):
                probe.client.publish(topics.scan(event.kiosk_id), encode(event), qos=1)
                if index % 100 == 0:
                    await asyncio.sleep(0.02)  # a steady stream, not one burst
                if index in kill_at:
                    await asyncio.sleep(0.05)  # let it get busy first
                    victim.kill()  # mid-batch, mid-transaction, with scans in flight
                    victim.start()  # systemd's Restart=always, same instance id

            want = {e.event_id for e in load}
            verdicts = await asyncio.to_thread(collect, probe, want, 90)
        finally:
            for central in centrals:
                central.stop()

        missing = want - verdicts.keys()
        assert not missing, f"{len(missing)} scans never answered"
        # A verdict may reach a kiosk twice (sent, then central died before the ack), but
        # it is always the same verdict: the kiosk's outbox makes the second a no-op.
        assert all(len({v.model_dump_json() for v in copies}) == 1 for copies in verdicts.values())
        numbers = await consistency(first)
        assert numbers["events decided"] == len(load) + len(opening)
        assert numbers["items with two open checkouts"] == 0
        assert numbers["checkouts without their verdict"] == 0
        assert numbers["verdicts without their audit row"] == numbers["audit chain broken"] == 0
        assert numbers["CHECKED_OUT verdicts"] == numbers["checkouts"]
        assert numbers["RETURNED verdicts"] == numbers["returns"]
        assert numbers["SESSION_OPENED verdicts"] == numbers["sessions"] == len(SESSION_KIOSKS)
        assert numbers["checkouts"] > 0
        assert numbers["returns"] > 0
