"""The CSV import's own checks and its reading of central's refusals, without a central."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from provisioning.library import BadFileError, Problem, _central_problems, read_rows


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text(text)
    return path


def test_good_rows_are_typed_and_blank_optional_cells_left_to_central(tmp_path: Path) -> None:
    path = write(tmp_path, '\ufeffmember_id,name,checkout_limit\nM-1,"Lin, Mei", 3\n\nM-2,Sam,\n')

    rows, lines = read_rows("members", path)

    assert rows == [
        {"member_id": "M-1", "name": "Lin, Mei", "checkout_limit": 3},
        {"member_id": "M-2", "name": "Sam"},
    ]
    assert lines == [2, 4]  # the blank line 3 is skipped but still counted


def test_every_bad_cell_is_reported_by_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "item_id,shelf_id,name,loan_days\n"
        "A-1,SHELF-A,Drill,400\n"
        "A-2,shelf a,Saw,7\n"
        "A-3,SHELF-A," + "x" * 81 + ",7\n"
        'A-4,SHELF-A,"multi\nline",seven\n'
        "A-5,SHELF-A,Rake,7,extra\n",
    )

    with pytest.raises(BadFileError) as refused:
        read_rows("items", path)

    assert [(p.line, p.column) for p in refused.value.problems] == [
        (2, "loan_days"),
        (3, "shelf_id"),
        (4, "name"),
        (6, "loan_days"),  # a quoted newline: the row ends on line 6
        (7, "*"),
    ]
    assert "between 1 and 365" in refused.value.problems[0].message


def test_a_header_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadFileError) as refused:
        read_rows("shelves", write(tmp_path, "shelf_id,name,name\nS-1,A,B\n"))

    assert refused.value.problems == [Problem(1, "name", "column appears twice")]


def test_central_row_refusals_map_back_to_file_lines() -> None:
    lines = [2, 3, 5, 9]
    conflict = httpx.Response(
        409,
        json={
            "detail": {
                "message": "2 bad row(s); nothing imported",
                "problems": [
                    {"row": 1, "column": "item_id", "message": "A-2 already exists"},
                    {"row": 3, "column": "shelf_id", "message": "shelf S-9 does not exist"},
                ],
            }
        },
    )
    invalid = httpx.Response(
        422,
        json={"detail": [{"loc": ["body", "rows", 2, "loan_days"], "msg": "too big"}]},
    )

    assert _central_problems(conflict, lines) == [
        Problem(3, "item_id", "A-2 already exists"),
        Problem(9, "shelf_id", "shelf S-9 does not exist"),
    ]
    assert _central_problems(invalid, lines) == [Problem(5, "loan_days", "too big")]
    assert _central_problems(httpx.Response(409, json={"detail": "busy"}), lines) is None
