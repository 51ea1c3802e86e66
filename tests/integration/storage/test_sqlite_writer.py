"""SQLite's writer: a batch waits for a write lock another connection holds, loop still live."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from central.clock import FakeClock
from central.storage.base import AuditEntry, Tx
from central.storage.sqlite import SqliteStore, _Checkpointer
from tests.unit.central.support import query

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


async def test_a_batch_waits_for_a_lock_held_elsewhere_while_the_loop_keeps_serving(
    store: SqliteStore, tmp_path: Path, clock: FakeClock
) -> None:
    # Someone else writing (an admin tool, a backup restore) holds the write lock for a
    # while: the batch must neither fail nor freeze the event loop (MQTT, /ready) meanwhile.
    other = sqlite3.connect(tmp_path / "central.db", isolation_level=None)
    with contextlib.closing(other):
        other.execute("BEGIN IMMEDIATE")

        async def work(tx: Tx) -> str:
            await tx.audit(AuditEntry(clock.now(), "admin:test", "test.write", reason="after"))
            return "written"

        batch = asyncio.create_task(store.run_write(work))
        ticks = 0
        for _ in range(30):  # 0.3 s of a loop that must keep running
            await asyncio.sleep(0.01)
            ticks += 1
        assert not batch.done()  # still waiting for the lock, not failed
        other.execute("COMMIT")
        assert await asyncio.wait_for(batch, 5) == "written"
    assert ticks == 30
    rows = await query(store, "SELECT reason FROM qr_audit_log WHERE action = 'test.write'")
    assert rows == [("after",)]


async def test_batches_after_a_wait_run_again_at_once(
    store: SqliteStore, tmp_path: Path, clock: FakeClock
) -> None:
    # After the lock came free, the next batches are written too, in order.
    other = sqlite3.connect(tmp_path / "central.db", isolation_level=None)
    with contextlib.closing(other):
        other.execute("BEGIN IMMEDIATE")

        def note(n: int) -> Callable[[Tx], Coroutine[Any, Any, int]]:
            async def work(tx: Tx) -> int:
                await tx.audit(AuditEntry(clock.now(), "admin:test", "test.write", reason=str(n)))
                return n

            return work

        first = asyncio.create_task(store.run_write(note(1)))
        await asyncio.sleep(0.05)
        other.execute("COMMIT")
        assert await asyncio.wait_for(first, 5) == 1
    assert [await store.run_write(note(n)) for n in (2, 3)] == [2, 3]
    rows = await query(store, "SELECT reason FROM qr_audit_log WHERE action = 'test.write'")
    assert rows == [("1",), ("2",), ("3",)]


async def test_the_wal_is_copied_back_beside_the_writer(
    store: SqliteStore, tmp_path: Path, clock: FakeClock
) -> None:
    # Scans commit into the WAL; copying it back into the database file is the
    # checkpointer's job, on its own thread, so no commit on the writer pays for it.
    # About 4 MB of writes (~1,000 pages, under the writer's own 4,000-page backstop)
    # reach the database file within a second or two, and the WAL stops growing.
    db = tmp_path / "central.db"
    before = db.stat().st_size

    async def work(tx: Tx) -> None:
        for n in range(100):
            entry = AuditEntry(clock.now(), "admin:test", "test.write", reason=f"{n}" * 4000)
            await tx.audit(entry)

    for _ in range(10):
        await store.run_write(work)
    wal = db.with_name("central.db-wal")
    written = wal.stat().st_size  # each page of the new rows, once
    for _ in range(100):
        if db.stat().st_size - before > 0.8 * written:
            break
        await asyncio.sleep(0.05)
    assert db.stat().st_size - before > 0.8 * written
    await asyncio.sleep(0.5)  # the checkpoint that copies the last frames
    await store.run_write(work)  # so the WAL is reused from its start, not grown
    assert wal.stat().st_size <= written


async def test_a_checkpoint_that_keeps_failing_is_logged_once_a_streak(
    backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Five tries a second against, say, a full disk: one warning when it starts failing,
    # one when it works again, not one every 0.2 s.
    path = tmp_path / "wal.db"
    sqlite3.connect(path).close()
    checkpointer = _Checkpointer(str(path), 1000)
    working = checkpointer._conn
    broken = sqlite3.connect(path, check_same_thread=False)
    broken.close()  # every statement on it raises sqlite3.ProgrammingError
    with caplog.at_level("WARNING", logger="central.storage.sqlite"):
        checkpointer._conn = broken
        await asyncio.sleep(1.0)
        assert checkpointer.failures >= 3
        checkpointer._conn = working
        await asyncio.sleep(0.5)
        checkpointer.stop()
    said = [r.getMessage() for r in caplog.records]
    assert said.count("WAL checkpoint failed") == 1
    assert len([m for m in said if m.startswith("WAL checkpoint works again after")]) == 1
    assert checkpointer.failures == 0
