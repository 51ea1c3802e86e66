"""The durable outbox: an accepted scan is on disk before it leaves, and survives a power cut."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.messages import CodeScan, SessionDone, encode, parse_event
from kiosk.outbox import Outbox

KIOSK = "KIOSK-A1"
AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def scan(code: str = "CS1.L.K1.DRILL-01.1.MAC", *, queued: bool = True, n: int = 0) -> CodeScan:
    return CodeScan(
        event_id=uuid.uuid4().hex,
        kiosk_id=KIOSK,
        code=code,
        scanned_at=AT + timedelta(seconds=n),
        queued=queued,
    )


def done() -> SessionDone:
    return SessionDone(event_id=uuid.uuid4().hex, kiosk_id=KIOSK, scanned_at=AT)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.db"


@pytest.fixture
async def box(path: Path) -> AsyncIterator[Outbox]:
    outbox = await Outbox.open(path)
    yield outbox
    await outbox.close()


async def test_a_new_outbox_is_empty_and_creates_its_directory(path: Path, box: Outbox) -> None:
    assert await asyncio.to_thread(path.exists)
    assert box.depth == 0
    assert await box.pending() == []


async def test_put_returns_the_bytes_to_publish(box: Outbox) -> None:
    event = scan()

    payload = await box.put(event)

    assert payload == encode(event)
    assert parse_event(KIOSK, payload) == event


async def test_pending_lists_events_oldest_first(box: Outbox) -> None:
    events: list[CodeScan | SessionDone] = [scan(f"CS1.L.K1.ITEM-{n}.1.MAC", n=n) for n in range(5)]
    events.insert(2, done())
    for event in events:
        await box.put(event)

    pending = await box.pending()

    assert [event_id for event_id, _ in pending] == [e.event_id for e in events]
    assert [payload for _, payload in pending] == [encode(e) for e in events]
    assert box.depth == 6


async def test_events_survive_close_and_reopen(path: Path) -> None:
    events: list[CodeScan | SessionDone] = [scan(n=1), scan(n=2), done()]
    first = await Outbox.open(path)
    payloads = [await first.put(event) for event in events]
    await first.close()

    reopened = await Outbox.open(path)
    try:
        assert reopened.depth == 3
        assert await reopened.pending() == [
            (e.event_id, p) for e, p in zip(events, payloads, strict=True)
        ]
    finally:
        await reopened.close()


async def test_events_survive_a_power_cut(path: Path, tmp_path: Path) -> None:
    # The power goes the moment put() returns: nothing is closed or checkpointed. What is
    # on disk (the database and its write-ahead log) must already hold the scan.
    box = await Outbox.open(path)
    try:
        event = scan()
        payload = await box.put(event)
        rescued = tmp_path / "after-the-cut"
        rescued.mkdir()
        for file in path.parent.iterdir():
            if not file.name.endswith("-shm"):  # shared memory does not survive a reboot
                shutil.copy2(file, rescued / file.name)
    finally:
        await box.close()

    rebooted = await Outbox.open(rescued / path.name)
    try:
        assert rebooted.depth == 1
        assert await rebooted.pending() == [(event.event_id, payload)]
    finally:
        await rebooted.close()


async def test_remove_is_true_once_then_false(box: Outbox) -> None:
    kept, answered = scan(n=1), scan(n=2)
    await box.put(kept)
    await box.put(answered)

    assert await box.remove(answered.event_id) is True
    assert await box.remove(answered.event_id) is False
    assert await box.remove("0123456789abcdef") is False

    assert box.depth == 1
    assert [event_id for event_id, _ in await box.pending()] == [kept.event_id]


async def test_depth_tracks_puts_and_removes(box: Outbox) -> None:
    events = [scan(n=n) for n in range(4)]
    depths = []
    for event in events:
        await box.put(event)
        depths.append(box.depth)
    for event in events[::2]:
        await box.remove(event.event_id)
        depths.append(box.depth)

    assert depths == [1, 2, 3, 4, 3, 2]
    assert box.depth == len(await box.pending())


async def test_depth_is_read_back_on_reopen_and_stays_right(path: Path) -> None:
    first = await Outbox.open(path)
    events = [scan(n=n) for n in range(3)]
    for event in events:
        await first.put(event)
    await first.close()

    reopened = await Outbox.open(path)
    try:
        await reopened.remove(events[0].event_id)
        assert reopened.depth == 2
        await reopened.put(events[1])  # a retry of something already stored
        assert reopened.depth == 2
    finally:
        await reopened.close()


async def test_putting_the_same_event_twice_stores_it_once(box: Outbox) -> None:
    event = scan()

    first = await box.put(event)
    second = await box.put(event)

    assert first == second
    assert box.depth == 1
    assert await box.pending() == [(event.event_id, first)]
    assert await box.remove(event.event_id) is True
    assert box.depth == 0


async def test_a_second_scan_of_the_same_label_is_a_separate_event(box: Outbox) -> None:
    # Two returns of the same item (say, returned, borrowed elsewhere, returned again)
    # are two events; only the event id deduplicates.
    await box.put(scan("CS1.L.K1.DRILL-01.1.MAC", n=1))
    await box.put(scan("CS1.L.K1.DRILL-01.1.MAC", n=2))

    assert box.depth == 2
