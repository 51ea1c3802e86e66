"""Holds under races, against one or two central instances on both backends: eight kiosks
return one item at once (it is allocated once), then eight members try to take the held
item at once (only the member it is held for gets it). ``violations()`` stays zero."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from broker import topics
from broker.local import LocalBroker
from broker.messages import AnyEvent, Reason, SessionDone, Verdict, encode
from testkit.consistency import consistency, violations
from testkit.probe import Probe
from tests.integration.test_contention import KIOSKS, centrals, conflicts, library
from tests.support.scans import scan

ROUNDS = 3


async def at_once(probe: Probe, events: Sequence[AnyEvent]) -> list[Verdict]:
    """Publish every event without waiting; their verdicts in the events' order."""
    for event in events:
        probe.client.publish(topics.scan(event.kiosk_id), encode(event), qos=1)
    verdicts: dict[str, Verdict] = {}
    while len(verdicts) < len(events):
        received = await asyncio.to_thread(probe.next, 15.0, topic_suffix="/verdict")
        verdict = Verdict.model_validate_json(received.payload)
        verdicts[verdict.event_id] = verdict
    return [verdicts[e.event_id] for e in events]


def done(kiosk_id: str) -> SessionDone:
    return SessionDone(event_id=uuid.uuid4().hex, kiosk_id=kiosk_id, scanned_at=datetime.now(UTC))


async def sessions(admin: httpx.AsyncClient, probe: Probe) -> None:
    """Member n opens a session at kiosk n, all at once."""
    passes = []
    for n, kiosk_id in enumerate(KIOSKS):
        code = (await admin.post(f"/members/M-{n:02d}/passes", json={})).json()["code"]
        passes.append(scan(kiosk_id, code))
    assert {v.reason for v in await at_once(probe, passes)} == {Reason.SESSION_OPENED}


async def ready_holder(admin: httpx.AsyncClient, item_id: str) -> list[str]:
    holds = (await admin.get("/holds", params={"item_id": item_id})).json()
    return [h["member_id"] for h in holds if h["state"] == "ready"]


@pytest.mark.slow
@pytest.mark.parametrize("instances", [1, 2])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_returned_held_item_is_allocated_once_and_lent_only_to_its_holder(
    backend: str, instances: int, tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    async with centrals(backend, instances, tmp_path, broker) as running:
        admin = running[0].admin
        await library(admin, members=len(KIOSKS))
        for kiosk_id in KIOSKS:  # every kiosk takes back every item
            body = {"return_point": True}
            (await admin.patch(f"/kiosks/{kiosk_id}/config", json=body)).raise_for_status()
        probe.subscribe(topics.VERDICT_FILTER)
        for n in range(ROUNDS):
            item_id = f"ITEM-{n:02d}"
            label = (await admin.get(f"/items/{item_id}/label")).json()["code"]
            await sessions(admin, probe)
            # Member 0 takes it; the seven others, at once, join its waitlist.
            (lent,) = await at_once(probe, [scan(KIOSKS[0], label)])
            assert lent.reason is Reason.CHECKED_OUT
            placed = await at_once(probe, [scan(k, label) for k in KIOSKS[1:]])
            assert {v.reason for v in placed} == {Reason.HOLD_PLACED}
            await at_once(probe, [done(k) for k in KIOSKS])

            # Eight returns of it at once: one closes the loan and allocates it.
            returned = await at_once(probe, [scan(k, label) for k in KIOSKS])
            reasons = sorted(v.reason.value for v in returned)
            assert reasons == ["NO_SESSION"] * (len(KIOSKS) - 1) + ["RETURNED_TO_HOLD"]
            (holder,) = await ready_holder(admin, item_id)

            # Eight members try to take it at once: only the holder gets it.
            await sessions(admin, probe)
            taken = await at_once(probe, [scan(k, label) for k in KIOSKS])
            winners = [KIOSKS[i] for i, v in enumerate(taken) if v.reason is Reason.CHECKED_OUT]
            assert winners == [f"KIOSK-{int(holder[2:]):02d}"]
            allowed = {Reason.CHECKED_OUT, Reason.RESERVED, Reason.ITEM_UNAVAILABLE}
            assert {v.reason for v in taken} <= allowed | {Reason.HOLD_PLACED}
            await at_once(probe, [done(k) for k in KIOSKS])
        assert await conflicts(running) == 0
        numbers = await consistency(running[0].settings)
        assert numbers["RETURNED_TO_HOLD verdicts"] == ROUNDS
        assert violations(numbers) == 0, numbers
