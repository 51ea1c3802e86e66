"""The durable outbox: an accepted scan is on disk before it leaves, and survives a power cut."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.messages import CodeScan, SessionDone, encode, parse_event
from kiosk.outbox import Answered, Outbox

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


# -- what is in flight ----------------------------------------------------------------------


async def test_an_answer_tells_how_the_event_was_held(box: Outbox) -> None:
    live, offline = scan(queued=False, n=1), scan(queued=True, n=2)
    await box.put(live)
    await box.put(offline)
    box.sent(live.event_id, 10.0, member_waiting=True)

    answered_live = await box.answer(live.event_id)
    answered_offline = await box.answer(offline.event_id)

    assert answered_live == Answered(live.scanned_at, queued=False, waiting=True, mine=True)
    assert answered_offline == Answered(offline.scanned_at, queued=True, waiting=False, mine=True)
    assert await box.answer(live.event_id) is None  # a redelivered verdict finds nothing
    assert box.depth == 0


async def test_a_member_waits_until_told_no_answer_came(box: Outbox) -> None:
    event = scan(queued=False)
    await box.put(event)
    box.sent(event.event_id, 100.0, member_waiting=True)

    assert box.overdue(102.9, timeout_s=3.0) == []
    assert box.overdue(103.1, timeout_s=3.0) == [event.event_id]
    assert box.overdue(110.0, timeout_s=3.0) == []  # told once
    assert box.depth == 1  # still sent again until answered
    answered = await box.answer(event.event_id)
    assert answered is not None
    assert not answered.waiting


async def test_due_skips_what_was_just_sent_and_marks_what_it_returns(box: Outbox) -> None:
    sent, unsent = scan(n=1), scan(n=2)
    await box.put(sent)
    await box.put(unsent)
    box.sent(sent.event_id, 100.0)

    assert [e for e, _ in await box.due(101.0, min_age=5.0)] == [unsent.event_id]
    assert await box.due(102.0, min_age=5.0) == []  # both went out within 5 s
    assert [e for e, _ in await box.due(106.5, min_age=5.0)] == [sent.event_id, unsent.event_id]


@pytest.mark.parametrize(
    ("answered", "now_s", "shown"),
    [
        (Answered(AT, queued=False, waiting=True, mine=True), 0, True),
        (Answered(AT, queued=False, waiting=False, mine=True), 1, False),  # timed out here
        (Answered(AT, queued=False, waiting=False, mine=False), 5, True),  # before a restart
        (Answered(AT, queued=False, waiting=False, mine=False), 16, False),  # long gone
        (Answered(AT, queued=False, waiting=False, mine=False), -1, False),  # clock went back
        (Answered(AT, queued=True, waiting=False, mine=False), 1, False),  # told "queued"
        (Answered(None, queued=False, waiting=False, mine=False), 1, False),
    ],
)
def test_whether_a_member_is_waiting_for_an_answer(
    answered: Answered, now_s: float, shown: bool
) -> None:
    assert answered.member_waiting(AT + timedelta(seconds=now_s), window_s=15.0) is shown


# -- an outbox file from the previous version --------------------------------------------------

OLD_SCHEMA = (
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_id TEXT NOT NULL UNIQUE, payload BLOB NOT NULL)"
)


async def test_an_outbox_written_by_the_previous_version_opens_with_every_event(
    path: Path,
) -> None:
    events: list[CodeScan | SessionDone] = [scan(queued=True, n=1), scan(queued=False, n=2)]
    events.append(done())
    path.parent.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(OLD_SCHEMA)
        db.executemany(
            "INSERT INTO outbox (event_id, payload) VALUES (?, ?)",
            [(e.event_id, encode(e)) for e in events],
        )
        # A row no version could parse: kept and sent as it is, never matched by content.
        db.execute("INSERT INTO outbox (event_id, payload) VALUES ('d0d0d0d0', x'ff00')")
        db.commit()

    box = await Outbox.open(path)
    try:
        assert box.depth == 4
        pending = await box.pending()
        assert pending[:3] == [(e.event_id, encode(e)) for e in events]
        answers = [await box.answer(e.event_id) for e in events]
        assert [(a.scanned_at, a.queued) for a in answers if a] == [
            (events[0].scanned_at, True),
            (events[1].scanned_at, False),
            (events[2].scanned_at, False),
        ]
        assert await box.answer("d0d0d0d0") == Answered(None, False, waiting=False, mine=False)
    finally:
        await box.close()

    reopened = await Outbox.open(path)  # upgraded once; opening again changes nothing
    try:
        assert reopened.depth == 0
        await reopened.put(scan())
        assert reopened.depth == 1
    finally:
        await reopened.close()
