"""Central's retained-state broadcast never puts an older availability over a newer one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from broker import topics
from broker.messages import Availability, AvailabilityState, encode
from central.clock import FakeClock
from central.mqtt import CentralLink
from central.service import _broadcast_state
from central.storage.sqlite import SqliteStore

ADMIN = "admin:test"


async def test_a_change_decided_while_the_snapshot_is_read_is_not_overwritten(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    store = await SqliteStore(tmp_path / "central.db").open()
    try:
        await store.migrate()
        await store.add_shelf("SHELF-A", "Tools", clock.now(), ADMIN)
        for item in ("DRILL-01", "SAW-01"):
            await store.add_item(item, "SHELF-A", item, clock.now(), ADMIN)
        link = CentralLink("CENTRAL-T", "127.0.0.1", 1)
        sent: list[tuple[str, bytes]] = []
        link._mqtt.publish = lambda topic, payload, **_kw: sent.append((topic, payload))  # type: ignore[method-assign,assignment]
        read_snapshot = store.all_availability
        drill = topics.availability("SHELF-A", "DRILL-01")

        async def snapshot_then_a_checkout(now: datetime) -> Sequence[Availability]:
            stale = await read_snapshot(now)
            # The consumer decides a checkout between the read and the publishes.
            newer = next(a for a in stale if a.item_id == "DRILL-01").model_copy(
                update={"state": AvailabilityState.CHECKED_OUT, "seq": 99}
            )
            link.publish(drill, encode(newer), retain=True)
            return stale

        store.all_availability = snapshot_then_a_checkout  # type: ignore[method-assign]
        await _broadcast_state(store, link, clock)
    finally:
        await store.close()

    by_topic: dict[str, list[Any]] = {}
    for topic, payload in sent:
        by_topic.setdefault(topic, []).append(Availability.model_validate_json(payload))
    assert [a.seq for a in by_topic[drill]] == [99]  # the snapshot's older copy was skipped
    assert len(by_topic[topics.availability("SHELF-A", "SAW-01")]) == 1  # the rest still sent
