"""``cs-admin`` commands for library data upkeep: list, edit and import shelves, items, members."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from broker.ids import is_id
from provisioning.api_client import call, open_client, refusal
from provisioning.errors import RefusedError, UsageError
from provisioning.output import show, table

# Rows sent per chunk of the one import request (progress is shown per chunk).
CHUNK_ROWS = 500


@dataclass(frozen=True)
class Column:
    """One CSV column an import understands."""

    name: str
    required: bool
    kind: str  # "id" | "name" | "int"
    low: int = 0
    high: int = 0


_COLUMNS: dict[str, tuple[Column, ...]] = {
    "shelves": (Column("shelf_id", True, "id"), Column("name", True, "name")),
    "items": (
        Column("item_id", True, "id"),
        Column("shelf_id", True, "id"),
        Column("name", True, "name"),
        Column("loan_days", False, "int", 1, 365),
    ),
    "members": (
        Column("member_id", True, "id"),
        Column("name", True, "name"),
        Column("checkout_limit", False, "int", 0, 100),
    ),
}
_KEY = {"shelves": "shelf_id", "items": "item_id", "members": "member_id"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an import file, where a person can find it."""

    line: int
    column: str
    message: str


class BadFileError(Exception):
    """The import file has problems; nothing was imported."""

    def __init__(self, problems: Sequence[Problem], *, refused_by_central: bool = False) -> None:
        super().__init__(f"{len(problems)} problem(s); nothing imported")
        self.problems = list(problems)
        self.refused_by_central = refused_by_central


# --- listing and editing ------------------------------------------------------------------


def cmd_shelves(args: argparse.Namespace) -> None:
    """List shelves and how many items each holds."""
    show(args, call(args, "GET", "/shelves"), ["shelf_id", "name", "items"])


def cmd_members(args: argparse.Namespace) -> None:
    """List members, their limits and whether they are suspended."""
    show(args, call(args, "GET", "/members"), ["member_id", "name", "checkout_limit", "suspended"])


def _show_edit(args: argparse.Namespace, edit: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(edit, indent=2, default=str))
        return
    if not edit["after"]:
        print("nothing changed")
        return
    rows = [
        {"field": f, "before": edit["before"][f], "after": edit["after"][f]} for f in edit["after"]
    ]
    print(table(rows, ["field", "before", "after"]))


def cmd_edit(args: argparse.Namespace) -> None:
    """Change an item, shelf or member; prints each field before and after."""
    if args.kind == "item":
        changes = {
            "name": args.name,
            "shelf_id": args.shelf,
            "loan_days": args.loan_days,
            "state": args.state,
        }
        path = f"/items/{args.ident}"
    elif args.kind == "shelf":
        changes = {"name": args.name}
        path = f"/shelves/{args.ident}"
    else:
        changes = {
            "name": args.name,
            "checkout_limit": args.checkout_limit,
            "suspended": args.suspended,
        }
        path = f"/members/{args.ident}"
    body = {k: v for k, v in changes.items() if v is not None}
    if not body:
        raise UsageError(
            f"nothing to change: give at least one option (cs-admin edit {args.kind} -h)"
        )
    _show_edit(args, call(args, "PATCH", path, body))


# --- CSV import ------------------------------------------------------------------------------


def read_rows(kind: str, path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The file's rows typed for central, and each row's line number; or every problem."""
    columns = _COLUMNS[kind]
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    reader = csv.reader(text.splitlines(keepends=True))
    header = [h.strip() for h in next(reader, [])]
    known = {c.name for c in columns}
    problems = [
        Problem(1, c.name, "missing column") for c in columns if c.required and c.name not in header
    ]
    problems += [Problem(1, h or "?", "unknown column") for h in header if h not in known]
    seen_header = set()
    for h in header:
        if h in seen_header:
            problems.append(Problem(1, h, "column appears twice"))
        seen_header.add(h)
    if problems:
        raise BadFileError(problems)
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue  # blank lines are layout, not rows
        if len(cells) != len(header):
            problems.append(
                Problem(line, "*", f"has {len(cells)} fields, the header has {len(header)}")
            )
            continue
        raw = dict(zip(header, (c.strip() for c in cells), strict=True))
        row: dict[str, Any] = {}
        for column in columns:
            value = raw.get(column.name, "")
            if value == "" and not column.required:
                continue  # central's default
            message, typed = _check_cell(column, value)
            if message:
                problems.append(Problem(line, column.name, message))
            else:
                row[column.name] = typed
        rows.append(row)
        lines.append(line)
    if problems:
        raise BadFileError(problems)
    return rows, lines


def _check_cell(column: Column, value: str) -> tuple[str, Any]:  # noqa: PLR0911 -- one return per rule
    if value == "":
        return "is empty", None
    if column.kind == "id":
        if not is_id(value):
            return f"{value!r} is not a valid id (A-Z, 0-9 and '-', up to 32)", None
        return "", value
    if column.kind == "name":
        return ("longer than 80 characters", None) if len(value) > 80 else ("", value)
    try:
        number = int(value)
    except ValueError:
        return f"{value!r} is not a whole number", None
    if not column.low <= number <= column.high:
        return f"{number} is not between {column.low} and {column.high}", None
    return "", number


def check_against_central(
    kind: str, rows: Sequence[dict[str, Any]], lines: Sequence[int], args: argparse.Namespace
) -> None:
    """Duplicates in the file, ids central already has, shelves it does not have."""
    key = _KEY[kind]
    listing = "/items" if kind == "items" else f"/{kind}"
    existing = {r[key] for r in call(args, "GET", listing)}
    shelves = {r["shelf_id"] for r in call(args, "GET", "/shelves")} if kind == "items" else set()
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    for row, line in zip(rows, lines, strict=True):
        ident = row.get(key)
        if ident in existing:
            problems.append(Problem(line, key, f"{ident} already exists in central"))
        elif ident in first_line:
            problems.append(Problem(line, key, f"{ident} is also on line {first_line[ident]}"))
        elif ident is not None:
            first_line[ident] = line
        if kind == "items" and row.get("shelf_id") not in shelves:
            problems.append(
                Problem(line, "shelf_id", f"shelf {row.get('shelf_id')} does not exist")
            )
    if problems:
        raise BadFileError(problems)


class Progress:
    """A progress line on stderr, when someone is watching or asked for it."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._started = time.monotonic()

    def say(self, text: str, *, done: bool = False) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self._started
        end = "\n" if done else ""
        print(f"\r{text} ({elapsed:.1f}s)\033[K", end=end, file=sys.stderr, flush=True)


def _body(kind: str, rows: Sequence[dict[str, Any]], progress: Progress) -> Iterator[bytes]:
    """The import request's JSON, in chunks: one request, so one transaction, with progress."""
    yield b'{"rows": ['
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start : start + CHUNK_ROWS]
        yield (b"," if start else b"") + ",".join(json.dumps(r) for r in chunk).encode()
        progress.say(f"sending {kind}: {start + len(chunk)}/{len(rows)} rows")
    yield b"]}"


def _central_problems(response: httpx.Response, lines: Sequence[int]) -> list[Problem] | None:
    """Central's row-by-row refusal (409 problems or 422 validation), by file line."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        return None
    found: list[Problem] = []
    if isinstance(detail, dict) and isinstance(detail.get("problems"), list):
        for p in detail["problems"]:
            found.append(Problem(lines[int(p["row"])], str(p["column"]), str(p["message"])))
    elif isinstance(detail, list):
        for error in detail:
            loc = list(error.get("loc", []))
            if len(loc) >= 3 and loc[:2] == ["body", "rows"] and isinstance(loc[2], int):
                column = str(loc[3]) if len(loc) > 3 else "*"
                found.append(Problem(lines[loc[2]], column, str(error.get("msg"))))
    return found or None


def cmd_import(args: argparse.Namespace) -> None:
    """Add shelves, items or members from a CSV file: all of them, or none if any row is bad.

    Columns (header row first): shelves shelf_id,name; items item_id,shelf_id,name[,loan_days];
    members member_id,name[,checkout_limit]. Every problem is reported by line and column.
    Exit 2 when the file has problems (nothing is sent), 1 when central refuses it.
    """
    kind = args.kind
    progress = Progress(args.progress or sys.stderr.isatty())
    rows, lines = read_rows(kind, Path(args.file))
    if not rows:
        raise UsageError(f"{args.file} has no rows to import")
    progress.say(f"checked {len(rows)} rows against the file's own rules")
    check_against_central(kind, rows, lines, args)
    progress.say(f"checked {len(rows)} rows against central", done=True)
    with open_client(args) as client:
        response = client.post(
            f"/{kind}/import",
            content=_body(kind, rows, progress),
            headers={"Content-Type": "application/json"},
            # One transaction for the whole file: give big files time.
            timeout=httpx.Timeout(10, read=max(30.0, len(rows) / 100)),
        )
    progress.say(f"central answered {response.status_code}", done=True)
    if response.status_code >= 400:
        problems = _central_problems(response, lines)
        if problems:
            raise BadFileError(problems, refused_by_central=True)
        raise refusal(response)
    result = response.json()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"imported {result['imported']} {kind} from {args.file}")


def run_import(args: argparse.Namespace) -> None:
    """:func:`cmd_import`, listing a bad file's problems (exit 2, or 1 if central found them)."""
    try:
        cmd_import(args)
    except BadFileError as bad:
        problems = [asdict(p) for p in bad.problems]
        if args.json:
            print(json.dumps({"imported": 0, "problems": problems}, indent=2))
        else:
            print(table(problems, ["line", "column", "message"]), file=sys.stderr)
        if bad.refused_by_central:
            raise RefusedError(f"central refused {args.file}: {bad}") from None
        raise UsageError(f"{args.file}: {bad}") from None


def register(sub: Any) -> None:
    """Add this module's commands to ``cs-admin``."""
    sub.add_parser(
        "shelves", help=cmd_shelves.__doc__, description=cmd_shelves.__doc__
    ).set_defaults(func=cmd_shelves)
    sub.add_parser(
        "members", help=cmd_members.__doc__, description=cmd_members.__doc__
    ).set_defaults(func=cmd_members)
    edit = sub.add_parser("edit", help=cmd_edit.__doc__, description=cmd_edit.__doc__)
    kinds = edit.add_subparsers(dest="kind", required=True)
    item = kinds.add_parser("item", help="change an item", description="Change an item.")
    item.add_argument("ident", metavar="ITEM_ID")
    item.add_argument("--name", help="new name")
    item.add_argument("--shelf", help="move it to this shelf")
    item.add_argument("--loan-days", type=int, help="new loan period in days")
    item.add_argument(
        "--state",
        choices=["available", "maintenance", "retired"],
        help="maintenance or retired: kiosks refuse its checkout; returns still work",
    )
    shelf = kinds.add_parser("shelf", help="rename a shelf", description="Rename a shelf.")
    shelf.add_argument("ident", metavar="SHELF_ID")
    shelf.add_argument("--name", required=True, help="new name")
    member = kinds.add_parser("member", help="change a member", description="Change a member.")
    member.add_argument("ident", metavar="MEMBER_ID")
    member.add_argument("--name", help="new name")
    member.add_argument("--checkout-limit", type=int, help="most items held at once")
    suspension = member.add_mutually_exclusive_group()
    suspension.add_argument(
        "--suspend", dest="suspended", action="store_const", const=True, help="refuse their passes"
    )
    suspension.add_argument(
        "--unsuspend", dest="suspended", action="store_const", const=False, help="lift it"
    )
    for parser in (item, shelf, member):
        parser.set_defaults(func=cmd_edit)
    imp = sub.add_parser(
        "import",
        help="add shelves, items or members from a CSV file (all or nothing)",
        description=cmd_import.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("kind", choices=sorted(_COLUMNS))
    imp.add_argument("file", metavar="FILE.csv")
    imp.add_argument(
        "--progress", action="store_true", help="progress on stderr even when it is not a terminal"
    )
    imp.set_defaults(func=run_import)
