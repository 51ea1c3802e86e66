"""A kiosk that was away while an item changed has the item's current state once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from broker.local import LocalBroker
from broker.messages import Availability, AvailabilityState, KioskState, parse_message
from broker.topics import AvailabilityRoute
from kiosk.mqtt import Inbound, KioskLink
from testkit.relay import Relay
from tests.conftest import central_settings, seed_library, start_central


async def _until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_kiosk_away_across_a_change_is_handed_the_current_state(
    tmp_path: Path, broker: LocalBroker
) -> None:
    # Availability reaches kiosks at QoS 0: a copy published while a kiosk is away is not
    # queued in its (persistent) session. What brings the kiosk up to date is its
    # SUBSCRIBE on every connect, for which the broker hands over the retained copy.
    heard: dict[str, Availability] = {}

    def on_message(route: Inbound, payload: bytes) -> None:
        if isinstance(route, AvailabilityRoute):
            availability = parse_message(Availability, payload)
            known = heard.get(availability.item_id)
            if known is None or availability.seq > known.seq:  # as kiosk/core.py
                heard[availability.item_id] = availability

    async with start_central(central_settings(tmp_path, broker)) as central:
        await seed_library(central.admin)
        relay = await Relay(broker.port).start()  # the kiosk's network, which we can cut
        link = KioskLink(
            "KIOSK-A1",
            "127.0.0.1",
            relay.port,
            software_version="test",
            on_message=on_message,
            on_connection=lambda _up: None,
        )
        link.follow_shelf("SHELF-A")
        farewell = link.status(KioskState.OFFLINE, datetime.now(UTC))
        running = asyncio.create_task(link.run(farewell))
        try:
            await _until(lambda: "DRILL-01" in heard, 10, "the kiosk never heard the drill")
            before = heard["DRILL-01"]
            assert before.state is AvailabilityState.AVAILABLE

            relay.cut()
            await _until(lambda: not link.online, 10, "the kiosk did not notice the drop")
            edited = await central.admin.patch("/items/DRILL-01", json={"state": "maintenance"})
            edited.raise_for_status()
            current = {a["item_id"]: a for a in (await central.admin.get("/items")).json()}
            assert current["DRILL-01"]["seq"] > before.seq
            await asyncio.sleep(0.5)  # the change is at the broker, the kiosk still away
            assert not link.online
            assert heard["DRILL-01"].seq == before.seq

            relay.restore()
            await _until(lambda: link.online, 20, "the kiosk did not come back")
            # The broker kept the kiosk's session (its subscriptions with it)...
            assert link.session_present
            # ...and still the kiosk now shows what central decided while it was away.
            await _until(
                lambda: heard["DRILL-01"].seq == current["DRILL-01"]["seq"],
                5,
                "the kiosk never got the change made while it was away",
            )
            assert heard["DRILL-01"].state is AvailabilityState.MAINTENANCE
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await relay.close()
