"""Library edits, label reprints and bulk imports in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from broker.messages import AvailabilityState
from central.clock import FakeClock
from central.errors import NotFoundError, StorageError
from central.storage.admin import IMPORT_CHUNK
from central.storage.base import ImportRefusedError, Problem
from tests.unit.central.support import ADMIN, DRILL, SHELF, AnyStore, query


def items(n: int, shelf: str = SHELF, start: int = 0) -> list[dict[str, object]]:
    return [
        {"item_id": f"CUP-{k:03d}", "shelf_id": shelf, "name": f"Cup {k}", "loan_days": 7}
        for k in range(start, start + n)
    ]


async def test_a_database_refusal_mid_import_leaves_no_row_behind(
    library: AnyStore, clock: FakeClock
) -> None:
    # loan_days 0 gets past the row checks (the API's models refuse it) but not the
    # database's CHECK constraint: the rows before it must be rolled back with it.
    rows = items(10)
    rows[6]["loan_days"] = 0
    before = await query(library, "SELECT count(*) FROM qr_audit_log")

    with pytest.raises(StorageError):
        await library.import_rows("items", rows, clock.now(), ADMIN)

    assert await query(library, "SELECT count(*) FROM items WHERE item_id LIKE 'CUP-%'") == [(0,)]
    assert await query(library, "SELECT count(*) FROM qr_audit_log") == before


async def test_a_refusal_in_a_later_chunk_takes_back_the_chunks_before_it(
    library: AnyStore, clock: FakeClock
) -> None:
    # Imports are written in short transactions (scans wait one chunk, not the file); a
    # refusal after the first chunks must still leave nothing of the import behind.
    rows = items(3 * IMPORT_CHUNK)
    rows[2 * IMPORT_CHUNK + 1]["loan_days"] = 0

    with pytest.raises(StorageError):
        await library.import_rows("items", rows, clock.now(), ADMIN)

    assert await query(library, "SELECT count(*) FROM items WHERE item_id LIKE 'CUP-%'") == [(0,)]
    undone = await query(
        library, "SELECT actor, detail FROM qr_audit_log WHERE action = 'item.import_undone'"
    )
    assert undone == [(ADMIN, f'{{"rows": {2 * IMPORT_CHUNK}}}')]


async def test_import_checks_every_row_inside_its_transaction(
    library: AnyStore, clock: FakeClock
) -> None:
    rows = [*items(3), *items(1), *items(1, shelf="SHELF-NONE", start=5)]
    rows.append({"item_id": DRILL, "shelf_id": SHELF, "name": "Again", "loan_days": 7})

    with pytest.raises(ImportRefusedError) as refused:
        await library.import_rows("items", rows, clock.now(), ADMIN)

    assert refused.value.problems == [
        Problem(3, "item_id", "CUP-000 appears twice in this import"),
        Problem(4, "shelf_id", "shelf SHELF-NONE does not exist"),
        Problem(5, "item_id", f"{DRILL} already exists"),
    ]
    assert await query(library, "SELECT count(*) FROM items WHERE item_id LIKE 'CUP-%'") == [(0,)]


async def test_imported_items_are_audited_and_get_their_first_availability(
    library: AnyStore, clock: FakeClock
) -> None:
    added = await library.import_rows("items", items(3), clock.now(), ADMIN)

    assert [(a.item_id, a.state, a.seq) for a in added] == [
        (f"CUP-{k:03d}", AvailabilityState.AVAILABLE, 1) for k in range(3)
    ]
    rows = await query(
        library, "SELECT actor, item_id FROM qr_audit_log WHERE action = 'item.import' ORDER BY seq"
    )
    assert rows == [(ADMIN, f"CUP-{k:03d}") for k in range(3)]


async def test_an_added_item_comes_with_its_first_availability_and_a_refused_one_bumps_none(
    library: AnyStore, clock: FakeClock
) -> None:
    added = await library.add_item("CUP-001", SHELF, "Cup", clock.now(), ADMIN, loan_days=7)
    assert (added.item_id, added.shelf_id, added.state, added.seq) == (
        "CUP-001",
        SHELF,
        AvailabilityState.AVAILABLE,
        1,
    )

    with pytest.raises(StorageError, match="already exists"):
        await library.add_item("CUP-001", SHELF, "Cup again", clock.now(), ADMIN)
    with pytest.raises(StorageError, match="does not exist"):
        await library.add_item("CUP-002", "SHELF-NONE", "Cup", clock.now(), ADMIN)

    now = {a.item_id: a.seq for a in await library.all_availability(clock.now())}
    assert now["CUP-001"] == 1
    assert "CUP-002" not in now


async def test_item_edit_records_before_and_after_and_bumps_availability(
    library: AnyStore, clock: FakeClock
) -> None:
    await library.add_shelf("SHELF-B", "Garden", clock.now(), ADMIN)
    first = await library.edit_item(
        DRILL, {"state": "maintenance", "loan_days": 7}, clock.now(), ADMIN
    )
    loan_only = await library.edit_item(DRILL, {"loan_days": 21}, clock.now(), ADMIN)
    moved = await library.edit_item(DRILL, {"shelf_id": "SHELF-B"}, clock.now(), ADMIN)

    # loan_days 7 was already so: only the state changed, and kiosks hear of it.
    assert first.availability is not None
    assert first.availability.state is AvailabilityState.MAINTENANCE
    assert (first.before.state, first.after.state, first.after.loan_days) == (
        "available",
        "maintenance",
        7,
    )
    assert loan_only.availability is None  # kiosks do not show loan periods
    assert moved.moved_from == SHELF
    assert moved.availability is not None
    assert moved.availability.shelf_id == "SHELF-B"
    assert moved.availability.seq > first.availability.seq
    details = await query(
        library, "SELECT detail FROM qr_audit_log WHERE action = 'item.edit' ORDER BY seq"
    )
    assert len(details) == 3
    assert '"before": {"state": "available"}' in details[0][0]


async def test_edits_of_missing_rows_and_unknown_shelves_are_refused(
    library: AnyStore, clock: FakeClock
) -> None:
    with pytest.raises(NotFoundError):
        await library.edit_item("NOPE-1", {"name": "x"}, clock.now(), ADMIN)
    with pytest.raises(NotFoundError):
        await library.edit_member("NOPE-1", {"name": "x"}, clock.now(), ADMIN)
    with pytest.raises(NotFoundError):
        await library.reprint_label("NOPE-1", clock.now(), ADMIN)
    with pytest.raises(StorageError, match="shelf SHELF-Z does not exist"):
        await library.edit_item(DRILL, {"shelf_id": "SHELF-Z", "name": "x"}, clock.now(), ADMIN)

    drill = await library.get_item(DRILL)
    assert drill is not None
    assert (drill.shelf_id, drill.name) == (SHELF, "Cordless drill")


async def test_concurrent_reprints_each_get_their_own_version(
    library: AnyStore, clock: FakeClock
) -> None:
    # Two admins reprinting the same label at once: no version is handed out twice.
    done = await asyncio.gather(
        *(library.reprint_label(DRILL, clock.now(), ADMIN) for _ in range(8))
    )

    assert sorted(row.label_version for row in done) == list(range(2, 10))
    drill = await library.get_item(DRILL)
    assert drill is not None
    assert drill.label_version == 9
