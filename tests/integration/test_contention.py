"""Racing kiosks against one or two central instances: exactly one winner, every time.

Kiosks are played by raw MQTT clients so that all of them publish at the same moment. The
tests also require that no write was refused by a constraint: the lock order alone must
prevent the race, and the constraints stay a backstop (tests/unit/central and
tests/integration/storage/ prove those refuse on their own).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker import topics
from broker.local import LocalBroker, free_port
from broker.messages import CodeScan, Reason, Verdict, encode
from testkit.probe import Probe
from tests.conftest import RunningCentral, backend_settings, start_central
from tests.support.scans import scan

KIOSKS = [f"KIOSK-{n:02d}" for n in range(8)]
ROUNDS = 12


@contextlib.asynccontextmanager
async def centrals(
    backend: str, count: int, tmp_path: Path, broker: LocalBroker
) -> AsyncIterator[list[RunningCentral]]:
    """``count`` central instances sharing one database and the scan stream."""
    async with (
        backend_settings(backend, tmp_path, broker) as first,
        contextlib.AsyncExitStack() as stack,
    ):
        running = [await stack.enter_async_context(start_central(first))]
        for n in range(1, count):
            other = first.model_copy(
                update={"instance_id": f"{first.instance_id}-{n}", "admin_port": free_port()}
            )
            running.append(await stack.enter_async_context(start_central(other)))
        yield running


async def library(admin: object, members: int) -> None:
    import httpx

    assert isinstance(admin, httpx.AsyncClient)
    (await admin.post("/shelves", json={"shelf_id": "SHELF-A", "name": "Tools"})).raise_for_status()
    for kiosk_id in KIOSKS:
        body = {"kiosk_id": kiosk_id, "shelf_id": "SHELF-A", "session_timeout_s": 600}
        (await admin.post("/kiosks", json=body)).raise_for_status()
    for n in range(ROUNDS):
        body = {"item_id": f"ITEM-{n:02d}", "shelf_id": "SHELF-A", "name": f"Item {n}"}
        (await admin.post("/items", json=body)).raise_for_status()
    for n in range(members):
        body = {"member_id": f"M-{n:02d}", "name": f"Member {n}", "checkout_limit": 100}
        (await admin.post("/members", json=body)).raise_for_status()


async def all_at_once(probe: Probe, scans: list[CodeScan]) -> dict[str, Verdict]:
    """Publish every scan without waiting, then collect one verdict per event id."""
    for event in scans:
        probe.client.publish(topics.scan(event.kiosk_id), encode(event), qos=1)
    verdicts: dict[str, Verdict] = {}
    while len(verdicts) < len(scans):
        received = await asyncio.to_thread(probe.next, 15.0, topic_suffix="/verdict")
        verdict = Verdict.model_validate_json(received.payload)
        verdicts[verdict.event_id] = verdict
    return verdicts


async def conflicts(instances: list[RunningCentral]) -> int:
    total = 0
    for instance in instances:
        counts = (await instance.admin.get("/stats")).json()["counts"]
        total += sum(counts.get(k, 0) for k in ("conflict", "fault", "batch_retry"))
    return total


@pytest.mark.slow
@pytest.mark.parametrize("instances", [1, 2])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_one_pass_shown_at_eight_kiosks_at_once_opens_one_session(
    backend: str, instances: int, tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    async with centrals(backend, instances, tmp_path, broker) as running:
        admin = running[0].admin
        await library(admin, members=1)
        probe.subscribe(topics.VERDICT_FILTER)
        for _ in range(ROUNDS):
            code = (await admin.post("/members/M-00/passes", json={})).json()["code"]
            verdicts = await all_at_once(probe, [scan(k, code) for k in KIOSKS])
            reasons = sorted(v.reason.value for v in verdicts.values())
            assert reasons == ["ALREADY_USED"] * (len(KIOSKS) - 1) + ["SESSION_OPENED"]
        assert await conflicts(running) == 0


@pytest.mark.slow
@pytest.mark.parametrize("instances", [1, 2])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_one_item_scanned_in_eight_sessions_at_once_goes_out_once(
    backend: str, instances: int, tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    async with centrals(backend, instances, tmp_path, broker) as running:
        admin = running[0].admin
        await library(admin, members=len(KIOSKS))
        probe.subscribe(topics.VERDICT_FILTER)
        passes = []
        for n, kiosk_id in enumerate(KIOSKS):
            code = (await admin.post(f"/members/M-{n:02d}/passes", json={})).json()["code"]
            passes.append(scan(kiosk_id, code))
        opened = await all_at_once(probe, passes)
        assert {v.reason for v in opened.values()} == {Reason.SESSION_OPENED}
        for n in range(ROUNDS):
            label = (await admin.get(f"/items/ITEM-{n:02d}/label")).json()["code"]
            verdicts = await all_at_once(probe, [scan(k, label) for k in KIOSKS])
            reasons = sorted(v.reason.value for v in verdicts.values())
            # The others join its waitlist (docs/circulation.md).
            assert reasons == ["CHECKED_OUT"] + ["HOLD_PLACED"] * (len(KIOSKS) - 1)
        states = {i["item_id"]: i["state"] for i in (await admin.get("/items")).json()}
        assert set(states.values()) == {"checked_out"}
        assert await conflicts(running) == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_redelivered_and_reordered_scans_change_nothing(
    backend: str, tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    async with centrals(backend, 1, tmp_path, broker) as running:
        admin = running[0].admin
        await library(admin, members=1)
        probe.subscribe(topics.VERDICT_FILTER)
        code = (await admin.post("/members/M-00/passes", json={})).json()["code"]
        labels = [(await admin.get(f"/items/ITEM-{n:02d}/label")).json()["code"] for n in range(3)]
        opened = scan("KIOSK-00", code)
        first = await all_at_once(probe, [opened])
        checkouts = [scan("KIOSK-00", label) for label in labels]
        decided = await all_at_once(probe, checkouts)
        # Every event again, newest first, twice: the same verdicts, no new effects.
        replay = [opened, *checkouts][::-1] * 2
        for event in replay:
            probe.client.publish(topics.scan(event.kiosk_id), encode(event), qos=1)
        again: list[Verdict] = []
        while len(again) < len(replay):
            received = await asyncio.to_thread(probe.next, 15.0, topic_suffix="/verdict")
            again.append(Verdict.model_validate_json(received.payload))
        original = {**first, **decided}
        assert all(verdict == original[verdict.event_id] for verdict in again)
        counts = (await admin.get("/stats")).json()["counts"]
        assert counts["replayed"] == len(replay)
        audit = (await admin.get("/audit", params={"limit": 1000})).json()
        assert sum(1 for row in audit if row["action"] == "scan.code") == 4
