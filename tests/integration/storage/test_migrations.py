"""Schema migrations on both backends: every step goes up, down and up again cleanly."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from broker.messages import AvailabilityState, Reason
from central.clock import FakeClock
from central.errors import MigrationError
from central.storage.postgres import PostgresStore
from central.storage.sqlite import SqliteStore
from central.tokens import TokenSigner
from testkit.postgres import fresh_database
from tests.integration.storage.support import (
    DB_ERRORS,
    NEWEST,
    NEWEST_TABLES,
    TABLES,
    V1_TABLES,
    conflict,
    schema_objects,
    tables,
)
from tests.unit.central.support import (
    ADA,
    DRILL,
    GRACE,
    KIOSK_A,
    KIOSK_B,
    AnyStore,
    code_scan,
    decide,
    execute,
    issue_pass,
    query,
    seed,
)

# Rows for every table, spelled for schema version 1 (so later migrations cannot change
# what this inserts): the way down must cope with a database in use, foreign keys and all.
VERSION_1_ROWS = (
    ("INSERT INTO shelves (shelf_id, name, created_at) VALUES ('S-1', 'Shelf', ?)", 1),
    ("INSERT INTO kiosks (kiosk_id, shelf_id, created_at) VALUES ('K-1', 'S-1', ?)", 1),
    ("INSERT INTO members (member_id, name, created_at) VALUES ('M-1', 'Ada', ?)", 1),
    (
        "INSERT INTO items (item_id, shelf_id, name, created_at) VALUES ('I-1', 'S-1', 'Drill', ?)",
        1,
    ),
    (
        "INSERT INTO qr_codes (pass_id, member_id, issued_at, expires_at, consumed_at)"
        " VALUES ('P-1', 'M-1', ?, ?, ?)",
        3,
    ),
    (
        "INSERT INTO sessions (kiosk_id, member_id, pass_id, opened_at, expires_at)"
        " VALUES ('K-1', 'M-1', 'P-1', ?, ?)",
        2,
    ),
    (
        "INSERT INTO checkouts (item_id, member_id, session_id, kiosk_id, event_id,"
        " checked_out_at, due_at) VALUES ('I-1', 'M-1', 1, 'K-1', 'E-1', ?, ?)",
        2,
    ),
    (
        "INSERT INTO scan_events (event_id, kiosk_id, scanned_at, decided_at, reason, verdict)"
        " VALUES ('E-1', 'K-1', ?, ?, 'CHECKED_OUT', '{}')",
        2,
    ),
    ("INSERT INTO qr_audit_log (at, actor, action) VALUES (?, 'system', 'test')", 1),
)


async def test_migrate_brings_an_empty_database_to_the_newest_version(
    empty_store: AnyStore,
) -> None:
    assert await empty_store.schema_version() == 0
    assert await tables(empty_store) == set()
    assert await empty_store.migrate() == NEWEST
    assert await empty_store.schema_version() == NEWEST
    # Running it again is a no-op, as on every service start.
    assert await empty_store.migrate() == NEWEST
    assert await tables(empty_store) == set(NEWEST_TABLES)


async def test_every_step_goes_up_down_and_up_again(empty_store: AnyStore) -> None:
    objects = {0: await schema_objects(empty_store)}
    assert objects[0] == set()
    for version in range(1, NEWEST + 1):
        assert await empty_store.migrate(target=version) == version
        objects[version] = await schema_objects(empty_store)
        assert objects[version] != objects[version - 1], f"step {version} changed nothing"
        assert await empty_store.migrate(target=version - 1) == version - 1
        assert await empty_store.schema_version() == version - 1
        # The down step leaves exactly what was there before: no stray index, trigger,
        # sequence or function.
        assert await schema_objects(empty_store) == objects[version - 1]
        assert await empty_store.migrate(target=version) == version
        assert await schema_objects(empty_store) == objects[version]
    assert await empty_store.migrate(target=0) == 0
    assert await schema_objects(empty_store) == set()


async def test_data_at_version_1_goes_down_to_nothing_and_up_again(
    empty_store: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    assert await empty_store.migrate(target=1) == 1
    for statement, times in VERSION_1_ROWS:
        await execute(empty_store, statement, *[now + timedelta(hours=n) for n in range(times)])
    for table in V1_TABLES:
        assert await query(empty_store, f"SELECT count(*) FROM {table}") == [(1,)], table

    assert await empty_store.migrate(target=0) == 0
    assert await empty_store.schema_version() == 0
    assert await schema_objects(empty_store) == set()

    assert await empty_store.migrate() == NEWEST
    assert await tables(empty_store) == set(NEWEST_TABLES)
    for table in TABLES:
        assert await query(empty_store, f"SELECT count(*) FROM {table}") == [(0,)], table
    # Ids start again from one, and the rules work on the rebuilt schema.
    await seed(empty_store, now)
    _, code = await issue_pass(empty_store, signer, ADA, now)
    opened = await decide(empty_store, signer, code_scan(KIOSK_A, code, now), now)
    assert opened.verdict.reason is Reason.SESSION_OPENED
    assert await query(empty_store, "SELECT session_id FROM sessions") == [(1,)]
    label = signer.label(DRILL, 1)
    taken = await decide(empty_store, signer, code_scan(KIOSK_A, label, now), now)
    assert taken.verdict.reason is Reason.CHECKED_OUT


async def test_migrations_go_down_to_nothing_and_up_again_from_the_newest(
    store: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    now = clock.now()
    await seed(store, now)
    pass_id, _ = await issue_pass(store, signer, ADA, now)
    async with store.write() as tx:
        session = await tx.start_session(KIOSK_A, ADA, pass_id, now, now + timedelta(hours=1))
        await tx.insert_checkout(
            DRILL, ADA, session.session_id, KIOSK_A, "E-1", now, now + timedelta(days=7)
        )

    assert await store.migrate(target=0) == 0
    assert await store.schema_version() == 0
    assert await tables(store) == set()

    assert await store.migrate() == NEWEST
    assert await tables(store) == set(NEWEST_TABLES)
    # The schema is empty and fully usable, constraints and triggers included.
    assert await store.all_availability(now) == []
    assert await store.audit_tail(10) == []
    await seed(store, now)
    assert [a.state for a in await store.all_availability(now)] == [AvailabilityState.AVAILABLE] * 3
    with pytest.raises(DB_ERRORS, match="append-only"):
        await execute(store, "DELETE FROM qr_audit_log")
    pass_id, _ = await issue_pass(store, signer, ADA, now)
    async with store.write() as tx:
        session = await tx.start_session(KIOSK_A, ADA, pass_id, now, now + timedelta(hours=1))
        await tx.insert_checkout(
            DRILL, ADA, session.session_id, KIOSK_A, "E-1", now, now + timedelta(days=7)
        )
    async with store.write() as tx, conflict(store, tx):
        await tx.insert_checkout(
            DRILL, GRACE, session.session_id, KIOSK_A, "E-2", now, now + timedelta(days=7)
        )
    open_rows = await query(store, "SELECT item_id, member_id FROM checkouts")
    assert open_rows == [(DRILL, ADA)]
    shown = {a.item_id: a.state for a in await store.all_availability(now)}
    assert shown[DRILL] is AvailabilityState.CHECKED_OUT


@pytest.mark.parametrize("target", [-1, NEWEST + 1])
async def test_migrate_refuses_a_version_that_does_not_exist(store: AnyStore, target: int) -> None:
    with pytest.raises(MigrationError):
        await store.migrate(target=target)
    assert await store.schema_version() == NEWEST


async def test_migrate_refuses_a_database_newer_than_the_code(
    store: AnyStore, clock: FakeClock
) -> None:
    await execute(
        store,
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', ?)",
        NEWEST + 1,
        clock.now(),
    )
    with pytest.raises(MigrationError, match="newer"):
        await store.migrate()
    assert await tables(store) == set(NEWEST_TABLES)


async def test_postgres_instances_starting_together_on_an_empty_database_all_migrate() -> None:
    # Several central instances share one PostgreSQL database and migrate as they start.
    # The race is lost nearly every time; three rounds make a pass by luck vanishingly rare.
    for _ in range(3):
        async with fresh_database() as dsn:
            stores = [await PostgresStore(dsn).open() for _ in range(4)]
            try:
                versions = await asyncio.gather(*(store.migrate() for store in stores))
            finally:
                for store in stores:
                    await store.close()
        assert versions == [NEWEST] * 4


async def test_sqlite_instances_starting_together_on_a_new_file_all_migrate(
    tmp_path: Path,
) -> None:
    # Two instances may share one SQLite file; the version check and the steps run in one
    # BEGIN IMMEDIATE transaction, so only one of them applies step 1.
    for round_ in range(10):
        path = tmp_path / f"round-{round_}.db"
        stores = [await SqliteStore(path).open() for _ in range(4)]
        try:
            versions = await asyncio.gather(*(store.migrate() for store in stores))
        finally:
            for store in stores:
                await store.close()
        assert versions == [NEWEST] * 4


async def test_per_kiosk_event_ids_survive_the_rollback_of_step_7(
    store: AnyStore, clock: FakeClock, signer: TokenSigner
) -> None:
    # Two kiosks minted the same event id; both were decided, each its own scan.
    now = clock.now()
    await seed(store, now)
    _, code = await issue_pass(store, signer, ADA, now)
    shared = "0123456789abcdef"
    first = code_scan(KIOSK_A, code, now).model_copy(update={"event_id": shared})
    second = code_scan(KIOSK_B, signer.label(DRILL, 1), now).model_copy(update={"event_id": shared})
    assert (await decide(store, signer, first, now)).verdict.reason is Reason.SESSION_OPENED
    assert (await decide(store, signer, second, now)).verdict.reason is Reason.NO_SESSION
    assert await query(store, "SELECT count(*) FROM scan_events") == [(2,)]

    # The old schema holds one verdict per event id: the first decided is kept, and
    # nothing else is lost.
    assert await store.migrate(target=6) == 6
    assert await query(store, "SELECT kiosk_id FROM scan_events") == [(KIOSK_A,)]
    assert await query(store, "SELECT count(*) FROM sessions") == [(1,)]
    assert await store.migrate() == NEWEST
    again = await decide(store, signer, first, now)
    assert (again.replayed, again.verdict.reason) == (True, Reason.SESSION_OPENED)
