"""Central through the real broker: passes, checkouts, returns and refusals as kiosks see them."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from broker import topics
from broker.local import LocalBroker
from broker.messages import Reason, SessionDone, Verdict
from testkit.probe import Probe
from tests.conftest import RunningCentral, central_settings, seed_library, start_central
from tests.support.scans import ask, scan


async def codes(central: RunningCentral) -> tuple[str, str, str]:
    admin = central.admin
    await seed_library(admin)
    pass_code = (await admin.post("/members/M-1001/passes", json={})).json()["code"]
    drill = (await admin.get("/items/DRILL-01/label")).json()["code"]
    saw = (await admin.get("/items/SAW-01/label")).json()["code"]
    return pass_code, drill, saw


async def test_checkout_reuse_and_return(central: RunningCentral, probe: Probe) -> None:
    pass_code, drill, saw = await codes(central)
    probe.subscribe(topics.verdict("KIOSK-A1"))
    probe.subscribe(topics.shelf_availability("SHELF-A"))

    opened = await ask(probe, scan("KIOSK-A1", pass_code))
    assert (opened.reason, opened.session_open, opened.member_name) == (
        Reason.SESSION_OPENED,
        True,
        "Ada",
    )
    first = await ask(probe, scan("KIOSK-A1", drill))
    assert first.reason is Reason.CHECKED_OUT
    assert first.due_at is not None
    second = await ask(probe, scan("KIOSK-A1", saw))
    assert second.reason is Reason.CHECKED_OUT
    done = await ask(
        probe,
        SessionDone(event_id=uuid.uuid4().hex, kiosk_id="KIOSK-A1", scanned_at=datetime.now(UTC)),
    )
    assert (done.reason, done.session_open) == (Reason.SESSION_CLOSED, False)

    reused = await ask(probe, scan("KIOSK-A1", pass_code))
    assert (reused.reason, reused.accepted) == (Reason.ALREADY_USED, False)

    returned = await ask(probe, scan("KIOSK-A1", drill))
    assert returned.reason is Reason.RETURNED

    items = {i["item_id"]: i["state"] for i in (await central.admin.get("/items")).json()}
    assert items == {"DRILL-01": "available", "SAW-01": "checked_out", "RAKE-01": "available"}


async def test_redelivered_scan_gets_the_same_verdict_and_no_second_effect(
    central: RunningCentral, probe: Probe
) -> None:
    pass_code, drill, _ = await codes(central)
    probe.subscribe(topics.verdict("KIOSK-A1"))
    await ask(probe, scan("KIOSK-A1", pass_code))
    checkout = scan("KIOSK-A1", drill)
    first = await ask(probe, checkout)
    again = await ask(probe, checkout)
    assert first == again
    audit = (await central.admin.get("/audit", params={"limit": 1000})).json()
    assert sum(1 for row in audit if row["event_id"] == checkout.event_id) == 1


async def test_item_scan_without_a_pass_is_refused(central: RunningCentral, probe: Probe) -> None:
    _, drill, _ = await codes(central)
    probe.subscribe(topics.verdict("KIOSK-A1"))
    verdict = await ask(probe, scan("KIOSK-A1", drill))
    assert (verdict.reason, verdict.session_open) == (Reason.NO_SESSION, False)


async def test_forged_and_garbage_codes_are_refused(central: RunningCentral, probe: Probe) -> None:
    pass_code, drill, _ = await codes(central)
    probe.subscribe(topics.verdict("KIOSK-A1"))
    forged = drill[:-1] + ("A" if drill[-1] != "A" else "B")
    assert (await ask(probe, scan("KIOSK-A1", forged))).reason is Reason.BAD_SIGNATURE
    assert (await ask(probe, scan("KIOSK-A1", "HELLO WORLD"))).reason is Reason.UNKNOWN_CODE
    # Broken JSON with a readable event id is still answered, so the kiosk is not left hanging.
    probe.publish(
        topics.scan("KIOSK-A1"), json.dumps({"v": 1, "event_id": "abcdefgh12", "code": 5}).encode()
    )
    received = await asyncio.to_thread(probe.next, 10.0, topic_suffix="/verdict")
    assert Verdict.model_validate_json(received.payload).reason is Reason.MALFORMED
    # ...and the consumer is still deciding real scans afterwards.
    assert (await ask(probe, scan("KIOSK-A1", pass_code))).reason is Reason.SESSION_OPENED


async def test_a_central_stopped_cleanly_leaves_the_share_group_at_once(
    tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    # Two centrals share the scans; one is scaled down. If it stayed in the share group,
    # the broker would keep handing it every other scan until its session expired.
    first = central_settings(tmp_path / "a", broker)
    second = central_settings(tmp_path / "b", broker, sqlite_path=first.sqlite_file)
    async with start_central(first) as central:
        await seed_library(central.admin)
        drill = (await central.admin.get("/items/DRILL-01/label")).json()["code"]
        async with start_central(second):
            pass  # joined the group, then stopped cleanly
        probe.subscribe(topics.VERDICT_FILTER)
        for n in range(8):
            kiosk = "KIOSK-A1" if n % 2 else "KIOSK-B1"
            started = asyncio.get_running_loop().time()
            verdict = await ask(probe, scan(kiosk, drill))
            assert verdict.reason in {Reason.NOT_CHECKED_OUT, Reason.NO_SESSION}
            assert asyncio.get_running_loop().time() - started < 3.0
