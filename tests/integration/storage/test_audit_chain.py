"""The audit log's hash chain on both backends: intact, edited, deleted, concurrent writers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import sqlite3

import asyncpg
import pytest

from broker.messages import Reason
from central.audit import verify_chain
from central.clock import FakeClock
from central.errors import StorageError
from central.storage.base import AuditEntry
from central.storage.postgres import PostgresStore
from central.storage.sqlite import SqliteStore
from central.tokens import TokenSigner
from testkit.postgres import fresh_database
from tests.integration.storage.support import NEWEST, empty_postgres
from tests.unit.central.support import (
    ADA,
    DRILL,
    KIOSK_A,
    KIOSK_B,
    AnyStore,
    code_scan,
    decide,
    execute,
    issue_pass,
    query,
)

CHAINED = 6  # the migration that made the audit log a hash chain
_SQLITE_GUARDS = (
    "CREATE TRIGGER qr_audit_log_no_update BEFORE UPDATE ON qr_audit_log"
    " BEGIN SELECT RAISE(ABORT, 'qr_audit_log is append-only'); END",
    "CREATE TRIGGER qr_audit_log_no_delete BEFORE DELETE ON qr_audit_log"
    " BEGIN SELECT RAISE(ABORT, 'qr_audit_log is append-only'); END",
)


async def tamper(store: AnyStore, statement: str) -> None:
    """Run ``statement`` on the audit log as an attacker with database access would.

    The append-only triggers are lifted on the test's own connection, inside one
    transaction that puts them back, so the guard is on again afterwards.
    """
    if isinstance(store, SqliteStore):
        with contextlib.closing(sqlite3.connect(store._path, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DROP TRIGGER qr_audit_log_no_update")
            db.execute("DROP TRIGGER qr_audit_log_no_delete")
            db.execute(statement)
            for guard in _SQLITE_GUARDS:
                db.execute(guard)
            db.execute("COMMIT")
        return
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE qr_audit_log DISABLE TRIGGER qr_audit_log_no_change")
        await conn.execute(statement)
        await conn.execute("ALTER TABLE qr_audit_log ENABLE TRIGGER qr_audit_log_no_change")


async def busy_library(library: AnyStore, clock: FakeClock, signer: TokenSigner) -> int:
    """Seeded library plus a session, a checkout and a return; how many audit rows now."""
    now = clock.now()
    _, code = await issue_pass(library, signer, ADA, now)
    label = signer.label(DRILL, 1)
    for scanned in (code, label):
        await decide(library, signer, code_scan(KIOSK_A, scanned, now), now)
    returned = await decide(library, signer, code_scan(KIOSK_B, label, now), now)
    assert returned.verdict.reason is Reason.RETURNED
    # PostgreSQL chains rows a moment after commit; tampering with a chained row is the test.
    await library.seal_audit()
    [(count,)] = await query(library, "SELECT count(*) FROM qr_audit_log")
    return int(count)


async def test_an_intact_chain_verifies_across_pages(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    rows = await busy_library(library, clock, signer)
    # A page of 3 rows makes the walk cross several pages, as a long log would.
    report = await verify_chain(library, page=3)
    assert report.intact, report
    assert (report.checked, report.pending, report.head_pos) == (rows, 0, rows)
    chained = await library.audit_rows(0, 1000)
    assert [r.seq for r in chained] == list(range(1, rows + 1))
    # Each row names the hash of the one before it.
    assert all(b.prev_hash == a.row_hash for a, b in itertools.pairwise(chained))


async def test_an_edited_row_is_reported_with_its_seq(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    rows = await busy_library(library, clock, signer)
    target = rows // 2
    await tamper(library, f"UPDATE qr_audit_log SET actor = 'admin:mallory' WHERE seq = {target}")
    report = await verify_chain(library, page=4)
    assert not report.intact
    assert report.broken_seq == target
    assert report.problem == "was changed after it was written"


async def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    rows = await busy_library(library, clock, signer)
    target = rows // 2
    [edited] = await library.audit_rows(target - 1, 1)
    forged = dataclasses.replace(edited, reason="RETURNED")
    await tamper(
        library,
        f"UPDATE qr_audit_log SET reason = 'RETURNED', row_hash = '{forged.expected_hash()}'"
        f" WHERE seq = {target}",
    )
    report = await verify_chain(library)
    assert (report.intact, report.broken_seq) == (False, target + 1)
    assert report.problem == "does not follow the row before it"


async def test_a_deleted_row_is_reported_with_its_seq(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    rows = await busy_library(library, clock, signer)
    target = rows // 2
    await tamper(library, f"DELETE FROM qr_audit_log WHERE seq = {target}")
    report = await verify_chain(library, page=5)
    assert (report.intact, report.broken_seq) == (False, target)
    assert report.problem == f"is missing: chain places {target}..{target}, before seq {target + 1}"


async def test_deleting_the_newest_rows_is_reported(
    library: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    rows = await busy_library(library, clock, signer)
    await tamper(library, f"DELETE FROM qr_audit_log WHERE seq >= {rows - 1}")
    report = await verify_chain(library)
    assert (report.intact, report.broken_seq) == (False, rows - 1)
    assert report.problem == f"is missing: chain places {rows - 1}..{rows}, the newest"


async def test_a_rolled_back_step_leaves_the_chain_whole(
    library: AnyStore, clock: FakeClock
) -> None:
    # The consumer runs each event in a savepoint; one that fails takes its audit row and
    # the head's move with it, so the next row follows the last one kept.
    now = clock.now()
    async with library.write() as tx:
        await tx.audit(AuditEntry(now, "system", "test.kept"))
        with contextlib.suppress(RuntimeError):
            async with library.savepoint(tx):
                await tx.audit(AuditEntry(now, "system", "test.undone"))
                raise RuntimeError("refused")
        await tx.audit(AuditEntry(now, "system", "test.after"))
    report = await verify_chain(library)
    assert report.intact, report
    actions = [r.action for r in await library.audit_rows(0, 1000)]
    assert actions[-2:] == ["test.kept", "test.after"]


async def test_rows_from_before_the_chain_stay_and_the_chain_follows_them(
    empty_store: AnyStore, clock: FakeClock
) -> None:
    now = clock.now()
    assert await empty_store.migrate(target=1) == 1
    for n in range(3):
        await execute(
            empty_store,
            "INSERT INTO qr_audit_log (at, actor, action) VALUES (?, 'system', ?)",
            now,
            f"old.{n}",
        )
    assert await empty_store.migrate() == NEWEST
    async with empty_store.write() as tx:
        await tx.audit(AuditEntry(now, "system", "new.0"))
    report = await verify_chain(empty_store)
    assert (report.intact, report.genesis_seq, report.checked, report.head_pos) == (True, 3, 1, 1)


async def test_two_postgres_instances_writing_and_sealing_at_once_keep_one_chain(
    clock: FakeClock,
) -> None:
    # Two pools stand for two central instances: 200 transactions append audit rows (each
    # first locking one of ten item rows, as the ledger does) while both instances' sealers
    # chain whatever has committed, over and over.
    async with fresh_database() as dsn:
        stores = [await PostgresStore(dsn, max_size=8).open() for _ in range(2)]
        try:
            await stores[0].migrate()
            await stores[0].add_shelf("S", "Shelf", clock.now(), "admin:test")
            for i in range(10):
                await stores[0].add_item(f"I-{i}", "S", "Drill", clock.now(), "admin:test")
            writing = True

            async def writer(n: int) -> None:
                async with stores[n % 2].write() as tx:
                    await tx.item(f"I-{n % 10}")
                    await tx.audit(AuditEntry(clock.now(), f"kiosk:K-{n}", "test.write"))

            async def sealer(store: PostgresStore) -> int:
                sealed = 0
                while writing:
                    sealed += await store.seal_audit(batch=16)
                    await asyncio.sleep(0)
                return sealed

            sealers = [asyncio.create_task(sealer(store)) for store in stores]
            await asyncio.gather(*(writer(n) for n in range(200)))
            writing = False
            sealed_live = sum(await asyncio.gather(*sealers))
            report = await verify_chain(stores[1], page=64)
            places = await query(stores[0], "SELECT count(DISTINCT chain_pos) FROM qr_audit_log")
        finally:
            for store in stores:
                await store.close()
    assert report.intact, report
    assert (report.checked, report.pending, report.head_pos) == (211, 0, 211)
    assert places == [(211,)]
    assert sealed_live > 0, "the sealers never ran alongside the writers"


@pytest.mark.parametrize("backend", ["postgres"])
async def test_an_emptied_postgres_log_starts_a_fresh_chain(library: AnyStore) -> None:
    # The test-only reset must leave a chain the next writes extend correctly.
    assert isinstance(library, PostgresStore)
    await empty_postgres(library)
    async with library.write() as tx:
        await tx.audit(AuditEntry(FakeClock().now(), "system", "test.first"))
    report = await verify_chain(library)
    assert (report.intact, report.head_pos) == (True, 1)


async def test_the_chain_head_refuses_a_second_row(library: AnyStore) -> None:
    with pytest.raises((sqlite3.Error, asyncpg.PostgresError)):
        await execute(
            library,
            "INSERT INTO audit_chain_head (id, genesis_seq, pos, row_hash) VALUES (2, 0, 0, 'x')",
        )


async def test_rows_with_any_text_hash_the_same_in_python_and_in_sql(
    library: AnyStore, clock: FakeClock
) -> None:
    # PostgreSQL hashes in SQL, verification in Python: quotes, escapes, control
    # characters and non-ASCII text must print the same way in both.
    odd = ['quo"te\\back', "ctl\x01\x1f\n\t", "Zoë 🛠 €", "\u2028/", "", "{}"]
    async with library.write() as tx:
        for text in odd:
            await tx.audit(
                AuditEntry(
                    clock.now(), f"admin:{text}", "test.odd", reason=text, detail={"t": text}
                )
            )
    report = await verify_chain(library)
    assert report.intact, report
    stored = [r.reason for r in await library.audit_rows(0, 1000) if r.action == "test.odd"]
    assert stored == odd


async def test_without_its_chain_head_the_log_is_not_chained_silently(
    library: AnyStore, clock: FakeClock
) -> None:
    await execute(library, "DELETE FROM audit_chain_head")
    # SQLite chains as it writes, so the write is refused; PostgreSQL's sealer refuses.

    async def write_and_seal() -> None:
        async with library.write() as tx:
            await tx.audit(AuditEntry(clock.now(), "system", "test.lost"))
        await library.seal_audit()

    with pytest.raises(StorageError, match="chain head"):
        await write_and_seal()


async def test_the_append_only_guard_lets_sealing_write_the_chain_columns_once_only(
    library: AnyStore, clock: FakeClock
) -> None:
    async with library.write() as tx:
        await tx.audit(AuditEntry(clock.now(), "system", "test.unsealed"))
    [(seq,)] = await query(library, "SELECT max(seq) FROM qr_audit_log")
    # Sealing may not smuggle in another change (PostgreSQL; SQLite refuses any UPDATE).
    with pytest.raises((sqlite3.Error, asyncpg.PostgresError), match="append-only"):
        await execute(
            library,
            "UPDATE qr_audit_log SET chain_pos = 999, prev_hash = 'a', row_hash = 'b',"
            " actor = 'admin:mallory' WHERE seq = ?",
            seq,
        )
    await library.seal_audit()
    # A chained row's hashes are written once: re-chaining it is refused.
    with pytest.raises((sqlite3.Error, asyncpg.PostgresError), match="append-only"):
        await execute(library, "UPDATE qr_audit_log SET row_hash = 'b' WHERE seq = ?", seq)
    assert (await verify_chain(library)).intact


async def test_going_down_from_the_chain_restores_the_plain_append_only_guard(
    library: AnyStore, clock: FakeClock
) -> None:
    # Step 6 made the chain; go to the step before it.
    assert await library.migrate(target=CHAINED - 1) == CHAINED - 1
    await execute(
        library,
        "INSERT INTO qr_audit_log (at, actor, action) VALUES (?, 'system', 'v1')",
        clock.now(),
    )
    # The version-1 guard, word for word: no trace of the sealing exception is left.
    for statement in ("UPDATE qr_audit_log SET actor = actor", "DELETE FROM qr_audit_log"):
        with pytest.raises((sqlite3.Error, asyncpg.PostgresError), match="append-only"):
            await execute(library, statement)
    assert await library.migrate() == NEWEST
    report = await verify_chain(library)
    assert report.intact
    assert report.genesis_seq == (await query(library, "SELECT max(seq) FROM qr_audit_log"))[0][0]
