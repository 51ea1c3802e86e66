"""The audit chain's hashing and walk, without a database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from central.storage.chain import GENESIS_HASH, ChainedRow, ChainHead, ChainWalk

AT = datetime(2026, 1, 5, 9, 0, 0, 123456, tzinfo=UTC)


def chained(count: int) -> list[ChainedRow]:
    """``count`` rows chained one after another from the genesis hash."""
    rows, prev = [], GENESIS_HASH
    for n in range(1, count + 1):
        row = ChainedRow(
            n, AT, "admin:test", "test", None, "K-1", None, None, None, "{}", n, prev, None
        )
        row = dataclasses.replace(row, row_hash=row.expected_hash())
        rows.append(row)
        prev = row.row_hash or ""
    return rows


def walk(rows: list[ChainedRow], head: ChainHead) -> ChainWalk:
    walker = ChainWalk(head)
    if walker.check_page(rows):
        walker.finish()
    return walker


@pytest.mark.parametrize(
    "change",
    [
        {"actor": "admin:mallory"},
        {"reason": ""},  # NULL and "" are different rows
        {"detail": '{"n": 1}'},
        {"seq": 99},
        {"at": AT.replace(microsecond=123457)},
    ],
)
def test_any_change_to_a_row_changes_its_hash(change: dict[str, Any]) -> None:
    [row] = chained(1)
    assert dataclasses.replace(row, **change).expected_hash() != row.row_hash


def test_a_whole_chain_walks_clean_and_an_exported_line_reads_back_the_same() -> None:
    rows = chained(5)
    walker = walk(rows, ChainHead(0, 5, rows[-1].row_hash or ""))
    assert (walker.broken_seq, walker.checked) == (None, 5)
    assert [ChainedRow.from_json(r.to_json()) for r in rows] == rows


def test_a_head_ahead_of_the_last_row_means_the_newest_rows_are_gone() -> None:
    rows = chained(5)
    walker = walk(rows[:3], ChainHead(0, 5, rows[-1].row_hash or ""))
    assert (walker.broken_seq, walker.problem) == (4, "is missing: chain places 4..5, the newest")


def test_two_rows_swapped_break_at_the_first_out_of_place() -> None:
    rows = chained(4)
    walker = walk([rows[0], rows[2], rows[1], rows[3]], ChainHead(0, 4, rows[-1].row_hash or ""))
    assert walker.broken_seq == 2
    assert walker.problem == "is missing: chain places 2..2, before seq 3"
