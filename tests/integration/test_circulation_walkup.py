"""Circulation at real kiosks, through a real broker and central: holds allocated at return,
renewals, a booking that shortens a loan, a problem reported at return."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from broker.local import LocalBroker
from central.service import open_store
from kiosk.feedback import Signal
from testkit.consistency import consistency, violations
from tests.conftest import backend_settings, seed_library, start_central
from tests.support.kiosks import KioskUnderTest, running_kiosk, until
from tests.unit.central.support import execute

ADA, GRACE, HEDY = "M-1001", "M-1002", "M-1003"


async def pass_of(admin: httpx.AsyncClient, member_id: str) -> str:
    answer = await admin.post(f"/members/{member_id}/passes", json={})
    answer.raise_for_status()
    return str(answer.json()["code"])


async def label_of(admin: httpx.AsyncClient, item_id: str) -> str:
    return str((await admin.get(f"/items/{item_id}/label")).json()["code"])


async def session(k: KioskUnderTest, code: str) -> None:
    await k.step_away()
    await k.show(code, Signal.SESSION_OPENED)


async def finish(k: KioskUnderTest) -> None:
    mark = len(k.kiosk.player.history)
    k.button.press()
    await k.until_signal(Signal.SESSION_CLOSED, after=mark)


async def holds_of(admin: httpx.AsyncClient, item_id: str) -> list[tuple[str, str]]:
    answer = (await admin.get("/holds", params={"item_id": item_id})).json()
    return [(h["member_id"], h["state"]) for h in answer]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_hold_is_allocated_at_return_elsewhere_and_passes_on_when_it_runs_out(
    broker: LocalBroker, tmp_path: Path, backend: str
) -> None:
    async with (
        backend_settings(backend, tmp_path, broker, hold_sweep_every_s=0.2) as settings,
        start_central(settings) as central,
    ):
        admin = central.admin
        await seed_library(admin)
        member = {"member_id": HEDY, "name": "Hedy"}
        (await admin.post("/members", json=member)).raise_for_status()
        kiosk = {"kiosk_id": "KIOSK-A2", "shelf_id": "SHELF-A"}
        (await admin.post("/kiosks", json=kiosk)).raise_for_status()
        drill = await label_of(admin, "DRILL-01")
        async with (
            running_kiosk("KIOSK-A1", broker, tmp_path / "a", debounce_s=0.4) as a,
            running_kiosk("KIOSK-A2", broker, tmp_path / "b", debounce_s=0.4) as b,
        ):
            await session(a, await pass_of(admin, ADA))
            await a.show(drill, Signal.CHECKED_OUT)
            await finish(a)
            # Grace, then Hedy, scan the lent drill in their sessions: each joins its waitlist.
            await session(b, await pass_of(admin, GRACE))
            await b.show(drill, Signal.HOLD_PLACED)
            await finish(b)
            await session(a, await pass_of(admin, HEDY))
            await a.show(drill, Signal.HOLD_PLACED)
            await finish(a)
            assert await holds_of(admin, "DRILL-01") == [(GRACE, "waiting"), (HEDY, "waiting")]

            # Ada brings it back at the other kiosk: the hold shelf, for Grace.
            await b.step_away()
            await b.show(drill, Signal.HOLD_SHELF)
            await until(lambda: a.kiosk.availability["DRILL-01"].state.value == "held")
            assert await holds_of(admin, "DRILL-01") == [(GRACE, "ready"), (HEDY, "waiting")]
            await session(a, await pass_of(admin, HEDY))
            await a.show(drill, Signal.REFUSED_RESERVED)
            await finish(a)

            # Grace was told three days ago (the reminders set notified_at) and never came:
            # the sweep passes the drill to Hedy, who may now take it; Grace may not.
            store = await open_store(settings)
            try:
                # As if Ada's loan and its return happened days ago, too.
                past = datetime.now(UTC) - timedelta(days=3)
                await execute(
                    store,
                    "UPDATE checkouts SET checked_out_at = ?, returned_at = ?"
                    " WHERE returned_at IS NOT NULL",
                    past - timedelta(days=1),
                    past,
                )
                await execute(
                    store,
                    "UPDATE holds SET ready_at = ?, notified_at = ? WHERE state = 'ready'",
                    past,
                    past,
                )
            finally:
                await store.close()
            for _ in range(50):
                if await holds_of(admin, "DRILL-01") == [(HEDY, "ready")]:
                    break
                await asyncio.sleep(0.1)  # the sweep runs every 0.2 s
            assert await holds_of(admin, "DRILL-01") == [(HEDY, "ready")]
            await session(b, await pass_of(admin, GRACE))
            await b.show(drill, Signal.REFUSED_RESERVED)
            await finish(b)
            await session(a, await pass_of(admin, HEDY))
            await a.show(drill, Signal.CHECKED_OUT)
            await finish(a)
        loans = {i["item_id"]: i["state"] for i in (await admin.get("/items")).json()}
        assert loans["DRILL-01"] == "checked_out"
        closed = (await admin.get("/holds", params={"include_closed": "true"})).json()
        assert sorted((h["member_id"], h["state"]) for h in closed) == [
            (GRACE, "expired"),
            (HEDY, "fulfilled"),
        ]
        numbers = await consistency(settings)
        assert violations(numbers) == 0, numbers


async def test_renewals_a_booking_and_a_problem_at_return(
    broker: LocalBroker, tmp_path: Path
) -> None:
    async with (
        backend_settings("sqlite", tmp_path, broker) as settings,
        start_central(settings) as central,
    ):
        admin = central.admin
        await seed_library(admin)
        saw = await label_of(admin, "SAW-01")
        drill = await label_of(admin, "DRILL-01")
        starts = datetime.now(UTC) + timedelta(days=3)
        booking = {
            "item_id": "DRILL-01",
            "member_id": GRACE,
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(days=2)).isoformat(),
        }
        (await admin.post("/reservations", json=booking)).raise_for_status()
        async with running_kiosk("KIOSK-A1", broker, tmp_path / "a", debounce_s=0.4) as a:
            await session(a, await pass_of(admin, ADA))
            await a.show(saw, Signal.CHECKED_OUT)
            for _ in range(2):  # two renewals by the default policy, then no more
                await a.step_away()
                await a.show(saw, Signal.RENEWED)
            await a.step_away()
            await a.show(saw, Signal.REFUSED_RENEWAL_LIMIT)
            # Grace's booking cuts Ada's loan of the drill short: due when Grace's starts.
            await a.show(drill, Signal.CHECKED_OUT)
            await until(lambda: a.kiosk.availability["DRILL-01"].due_at is not None)
            due = a.kiosk.availability["DRILL-01"].due_at
            assert due is not None
            assert abs((due - starts).total_seconds()) < 1
            await finish(a)

            # The saw comes back broken: one press while the kiosk asks.
            await a.step_away()
            mark = await a.show(saw, Signal.RETURNED)
            await a.until_signal(Signal.INSPECT, after=mark)
            a.button.press()
            await a.until_signal(Signal.PROBLEM_NOTED, after=mark)
        tickets = (await admin.get("/tickets")).json()
        assert [(t["item_id"], t["kiosk_id"], t["member_id"]) for t in tickets] == [
            ("SAW-01", "KIOSK-A1", ADA)
        ]
        items = {i["item_id"]: i["state"] for i in (await admin.get("/items")).json()}
        assert items["SAW-01"] == "maintenance"
        numbers = await consistency(settings)
        assert violations(numbers) == 0, numbers
