"""``cs-admin`` against a real central: the admin guide, printed codes, refusals and exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from broker.local import LocalBroker, free_port
from central.keys import load_key_ring
from central.tokens import Label, Pass, TokenSigner
from hardware.zbar import ZbarDecoder
from hardware.zxing import ZxingDecoder
from provisioning.cli import main
from provisioning.errors import EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE
from tests.conftest import RunningCentral, seed_library
from tests.support.kiosks import running_kiosk

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Outcome:
    """What one ``cs-admin`` run left behind."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Awaitable[Outcome]]


@pytest.fixture(autouse=True)
def _no_ambient_admin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # An exported CS_ADMIN_TOKEN/URL on the developer's machine would change what is tested.
    monkeypatch.delenv("CS_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("CS_ADMIN_URL", raising=False)


def url_of(central: RunningCentral) -> str:
    return f"http://127.0.0.1:{central.settings.admin_port}"


def token_file_of(central: RunningCentral) -> Path:
    return central.settings.data_dir / "admin.token"


async def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Outcome:
    """Run ``cs-admin argv`` off the event loop (central answers on it) and capture output."""
    capsys.readouterr()  # drop anything printed before
    code = await asyncio.to_thread(main, argv)
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def parse_table(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """Column names and rows of a ``cs-admin`` table, asserting every column lines up."""
    header, *lines = text.rstrip("\n").splitlines()
    columns = [(m.start(), m.group()) for m in re.finditer(r"\S+", header)]
    assert columns, f"no header in {text!r}"
    assert columns[0][0] == 0, f"header is indented: {header!r}"
    names = [name for _, name in columns]
    rows = []
    for text_line in lines:
        # Rows are right-stripped, so trailing blank cells are simply missing.
        line = text_line.ljust(columns[-1][0])
        row = {}
        for index, (start, name) in enumerate(columns):
            end = columns[index + 1][0] if index + 1 < len(columns) else len(line)
            cell = line[start:end]
            if index + 1 < len(columns):
                # The next column starts after at least the two-space gap, so nothing runs
                # over into it...
                assert line[end - 2 : end] == "  ", f"{name} overflows in {line!r}"
            if start:
                # ...and each value starts exactly under its heading.
                assert line[start - 1] == " ", f"{name} starts early in {line!r}"
            if cell.strip():
                assert not cell[0].isspace(), f"{name} starts late in {line!r}"
            row[name] = cell.strip()
        rows.append(row)
    return names, rows


def decode_png(path: Path) -> dict[str, list[str]]:
    """The texts each real decoder reads from a PNG, loaded as a greyscale camera frame."""
    with Image.open(path) as image:
        frame = np.asarray(image.convert("L"), dtype=np.uint8)
    return {decoder.name: decoder.decode(frame) for decoder in (ZxingDecoder(), ZbarDecoder())}


def signer_of(central: RunningCentral) -> TokenSigner:
    return TokenSigner(load_key_ring(central.settings.keys_path, create=False))


# --- the admin guide -----------------------------------------------------------------------


async def test_admin_guide_adds_library_data_and_lists_items(
    cli: Cli, central: RunningCentral
) -> None:
    shelf = await cli("add", "shelves", "shelf_id=SHELF-A", "name=Power tools")
    assert shelf.code == 0, shelf.err
    assert shelf.json() == {"shelf_id": "SHELF-A", "name": "Power tools"}
    assert (await cli("add", "shelves", "shelf_id=SHELF-B", "name=Garden")).code == 0

    drill = await cli("add", "items", "item_id=DRILL-01", "shelf_id=SHELF-A", "name=Cordless drill")
    assert drill.code == 0, drill.err
    added = drill.json()
    assert (added["item_id"], added["shelf_id"], added["name"], added["state"]) == (
        "DRILL-01",
        "SHELF-A",
        "Cordless drill",
        "available",
    )
    rake = await cli(
        "add",
        "items",
        "item_id=LONG-HANDLED-RAKE-01",
        "shelf_id=SHELF-B",
        "name=Rake",
        "loan_days=7",
    )
    assert rake.code == 0, rake.err

    member = await cli("add", "members", "member_id=M-1001", "name=Ada", "checkout_limit=3")
    assert member.code == 0, member.err
    # FIELD=VALUE arrives as text; central must store the number, not the string.
    assert member.json() == {"member_id": "M-1001", "name": "Ada", "checkout_limit": 3}

    kiosk = await cli("add", "kiosks", "kiosk_id=KIOSK-A1", "shelf_id=SHELF-A")
    assert kiosk.code == 0, kiosk.err
    assert (kiosk.json()["kiosk_id"], kiosk.json()["shelf_id"]) == ("KIOSK-A1", "SHELF-A")

    table = await cli("items")
    assert table.code == 0, table.err
    names, rows = parse_table(table.out)
    assert names == ["ITEM_ID", "SHELF_ID", "NAME", "STATE", "DUE_AT"]
    assert [(r["ITEM_ID"], r["SHELF_ID"], r["NAME"], r["STATE"]) for r in rows] == [
        ("DRILL-01", "SHELF-A", "Cordless drill", "available"),
        ("LONG-HANDLED-RAKE-01", "SHELF-B", "Rake", "available"),
    ]

    as_json = await cli("--json", "items")
    assert as_json.code == 0, as_json.err
    items = as_json.json()
    direct = (await central.admin.get("/items")).json()
    # changed_at is stamped at read time, so two reads differ in it and nothing else.
    assert [{**i, "changed_at": None} for i in items] == [{**i, "changed_at": None} for i in direct]
    assert [(i["item_id"], i["shelf_id"], i["name"], i["state"]) for i in items] == [
        (r["ITEM_ID"], r["SHELF_ID"], r["NAME"], r["STATE"]) for r in rows
    ]


async def test_kiosks_lists_enrolled_kiosks_and_who_is_online(
    cli: Cli, central: RunningCentral, broker: LocalBroker, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    added = await cli("add", "kiosks", "kiosk_id=KIOSK-A2", "shelf_id=SHELF-A")
    assert added.code == 0, added.err

    async with running_kiosk("KIOSK-A1", broker, tmp_path / "kiosk"):
        async with asyncio.timeout(10):
            while True:
                listed = await cli("--json", "kiosks")
                assert listed.code == 0, listed.err
                states = {k["kiosk_id"]: k["state"] for k in listed.json()}
                if states.get("KIOSK-A1") == "online":
                    break
                await asyncio.sleep(0.05)
        table = await cli("kiosks")

    assert table.code == 0, table.err
    names, rows = parse_table(table.out)
    # Every column is checked in tests/integration/test_fleet.py.
    assert names[:3] == ["KIOSK_ID", "SHELF_ID", "STATE"]
    by_id = {r["KIOSK_ID"]: r for r in rows}
    assert sorted(by_id) == ["KIOSK-A1", "KIOSK-A2", "KIOSK-B1"]
    assert (by_id["KIOSK-A1"]["SHELF_ID"], by_id["KIOSK-A1"]["STATE"]) == ("SHELF-A", "online")
    assert by_id["KIOSK-A1"]["OUTBOX"] == "0"
    # Enrolled but never connected: listed, and not claimed to be online.
    assert (by_id["KIOSK-A2"]["SHELF_ID"], by_id["KIOSK-A2"]["STATE"]) == ("SHELF-A", "unknown")
    assert (by_id["KIOSK-B1"]["SHELF_ID"], by_id["KIOSK-B1"]["STATE"]) == ("SHELF-B", "unknown")
    assert {r["CONFIG"] for r in rows} == {"1"}


async def test_audit_shows_the_newest_admin_actions(cli: Cli, central: RunningCentral) -> None:
    await seed_library(central.admin)
    added = await cli("add", "items", "item_id=DRILL-02", "shelf_id=SHELF-A", "name=Second drill")
    assert added.code == 0, added.err

    table = await cli("audit", "--limit", "5")
    assert table.code == 0, table.err
    names, rows = parse_table(table.out)
    assert names == ["AT", "ACTOR", "ACTION", "REASON", "KIOSK_ID", "MEMBER_ID", "ITEM_ID"]
    assert len(rows) == 5
    # The newest row comes last, like tail(1): the item just added.
    assert (rows[-1]["ACTOR"], rows[-1]["ACTION"], rows[-1]["ITEM_ID"]) == (
        "admin:api",
        "item.add",
        "DRILL-02",
    )
    # Only the newest five: the shelves added first have scrolled out.
    assert "shelf.add" not in {r["ACTION"] for r in rows}
    assert [r["ACTION"] for r in rows[:-1]] == [
        "member.add",
        "member.add",
        "kiosk.enrol",
        "kiosk.enrol",
    ]

    as_json = await cli("--json", "audit", "--limit", "5")
    assert as_json.code == 0, as_json.err
    entries = as_json.json()
    assert [e["action"] for e in entries] == [r["ACTION"] for r in rows]
    assert [e["at"] for e in entries] == [r["AT"] for r in rows]
    assert entries[-1]["item_id"] == "DRILL-02"
    assert entries[-1]["detail"] == {"shelf_id": "SHELF-A", "name": "Second drill"}


# --- printed codes -------------------------------------------------------------------------


async def test_label_png_decodes_to_the_printed_code_and_verifies(
    cli: Cli, central: RunningCentral, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    out = tmp_path / "label.png"

    printed = await cli("label", "DRILL-01", "--out", str(out))

    assert printed.code == 0, printed.err
    names, rows = parse_table(printed.out)
    assert names == ["ITEM_ID", "VERSION", "CODE"]
    [row] = rows
    code = row["CODE"]
    assert (row["ITEM_ID"], row["VERSION"]) == ("DRILL-01", "1")
    assert decode_png(out) == {"zxing-cpp": [code], "pyzbar": [code]}
    assert signer_of(central).verify(code, datetime.now(UTC)) == Label("DRILL-01", 1)
    # The label a kiosk sees is the one central would hand out now.
    assert code == (await central.admin.get("/items/DRILL-01/label")).json()["code"]


async def test_pass_png_decodes_to_the_printed_code_and_verifies(
    cli: Cli, central: RunningCentral, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    out = tmp_path / "pass.png"
    before = datetime.now(UTC)

    printed = await cli("pass", "M-1001", "--out", str(out))

    after = datetime.now(UTC)
    assert printed.code == 0, printed.err
    names, rows = parse_table(printed.out)
    assert names == ["MEMBER_ID", "PASS_ID", "EXPIRES_AT", "CODE"]
    [row] = rows
    code = row["CODE"]
    expires_at = datetime.fromisoformat(row["EXPIRES_AT"])
    assert decode_png(out) == {"zxing-cpp": [code], "pyzbar": [code]}
    assert signer_of(central).verify(code, datetime.now(UTC)) == Pass(
        row["PASS_ID"], "M-1001", expires_at
    )
    # No --ttl: central's default lifetime (15 minutes unless configured).
    ttl = timedelta(seconds=central.settings.pass_ttl_s)
    assert before.replace(microsecond=0) + ttl <= expires_at <= after + ttl


async def test_pass_ttl_sets_the_expiry(cli: Cli, central: RunningCentral) -> None:
    await seed_library(central.admin)
    before = datetime.now(UTC)

    issued = await cli("--json", "pass", "M-1002", "--ttl", "120")

    after = datetime.now(UTC)
    assert issued.code == 0, issued.err
    body = issued.json()
    expires_at = datetime.fromisoformat(body["expires_at"])
    ttl = timedelta(seconds=120)
    assert before.replace(microsecond=0) + ttl <= expires_at <= after + ttl
    token = signer_of(central).verify(body["code"], datetime.now(UTC))
    assert token == Pass(body["pass_id"], "M-1002", expires_at)
    # Expired once the two minutes are up.
    assert not isinstance(signer_of(central).verify(body["code"], expires_at), Pass)


# --- refusals ------------------------------------------------------------------------------


async def test_pass_for_unknown_member_is_refused_and_writes_nothing(
    cli: Cli, central: RunningCentral, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    out = tmp_path / "pass.png"

    refused = await cli("pass", "M-9999", "--out", str(out))

    assert refused.code == EXIT_REFUSED
    assert "M-9999" in refused.err
    assert "404" in refused.err
    assert refused.out == ""
    assert not out.exists()


async def test_adding_an_existing_item_is_refused_and_keeps_the_original(
    cli: Cli, central: RunningCentral
) -> None:
    await seed_library(central.admin)

    refused = await cli("add", "items", "item_id=DRILL-01", "shelf_id=SHELF-B", "name=Impostor")

    assert refused.code == EXIT_REFUSED
    assert refused.err.startswith("central refused (409): ")
    assert "item DRILL-01 already exists" in refused.err
    assert refused.out == ""
    items = {i["item_id"]: i for i in (await central.admin.get("/items")).json()}
    assert sorted(items) == ["DRILL-01", "RAKE-01", "SAW-01"]
    assert (items["DRILL-01"]["name"], items["DRILL-01"]["shelf_id"]) == (
        "Cordless drill",
        "SHELF-A",
    )


@pytest.mark.parametrize(
    ("bad", "field"),
    [("loan_days=0", "loan_days"), ("colour=red", "colour"), ("loan_days=many", "loan_days")],
)
async def test_add_with_a_bad_field_is_refused_naming_the_field(
    cli: Cli, central: RunningCentral, bad: str, field: str
) -> None:
    await seed_library(central.admin)

    refused = await cli("add", "items", "item_id=DRILL-09", "shelf_id=SHELF-A", "name=Drill", bad)

    assert refused.code == EXIT_REFUSED
    assert refused.err.startswith("central refused (422): ")
    assert field in refused.err
    assert refused.out == ""
    items = [i["item_id"] for i in (await central.admin.get("/items")).json()]
    assert "DRILL-09" not in items


# --- credentials and reachability ----------------------------------------------------------


def test_missing_token_exits_non_zero_with_a_hint() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"CS_ADMIN_TOKEN", "CS_ADMIN_URL"}}
    url = f"http://127.0.0.1:{free_port()}"

    done = subprocess.run(
        [sys.executable, "-m", "provisioning.cli", "--url", url, "items"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode != 0
    assert "no admin token" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


async def test_wrong_token_is_refused(
    central: RunningCentral, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed_library(central.admin)

    refused = await run_cli(capsys, ["--url", url_of(central), "--token", "not-the-token", "items"])

    assert refused.code == EXIT_REFUSED
    assert refused.err == "central refused (401): admin token required\n"
    assert refused.out == ""


async def test_token_from_the_environment_is_used(
    central: RunningCentral, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_library(central.admin)
    monkeypatch.setenv("CS_ADMIN_TOKEN", token_file_of(central).read_text().strip())
    monkeypatch.setenv("CS_ADMIN_URL", url_of(central))

    listed = await run_cli(capsys, ["--json", "items"])

    assert listed.code == 0, listed.err
    assert [i["item_id"] for i in listed.json()] == ["DRILL-01", "RAKE-01", "SAW-01"]


def test_unreachable_central_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    code = main(["--url", url, "--token", "anything", "items"])

    captured = capsys.readouterr()
    assert code == EXIT_UNREACHABLE
    assert captured.err.startswith(f"cannot reach central at {url}")
    assert captured.out == ""


# --- refusals a person can act on ---------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("loan_days=0", "loan_days: Input should be greater than or equal to 1"),
        ("colour=red", "colour: Extra inputs are not permitted"),
    ],
)
async def test_422_message_is_readable(
    cli: Cli, central: RunningCentral, bad: str, expected: str
) -> None:
    await seed_library(central.admin)

    refused = await cli("add", "items", "item_id=DRILL-09", "shelf_id=SHELF-A", "name=Drill", bad)

    assert refused.code == EXIT_REFUSED
    assert expected in refused.err
    assert "{'" not in refused.err


async def test_pass_ttl_zero_is_not_silently_replaced(cli: Cli, central: RunningCentral) -> None:
    await seed_library(central.admin)

    issued = await cli("pass", "M-1001", "--ttl", "0")

    assert issued.code != 0
    assert issued.out == ""


async def test_empty_cells_are_blank(cli: Cli, central: RunningCentral) -> None:
    await seed_library(central.admin)

    table = await cli("items")

    assert table.code == 0, table.err
    _, rows = parse_table(table.out)
    assert {r["DUE_AT"] for r in rows} == {""}


def test_missing_token_is_a_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"CS_ADMIN_TOKEN", "CS_ADMIN_URL"}}
    url = f"http://127.0.0.1:{free_port()}"

    done = subprocess.run(
        [sys.executable, "-m", "provisioning.cli", "--url", url, "items"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == EXIT_USAGE


def test_missing_token_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "admin.token"

    code = main(["--url", f"http://127.0.0.1:{free_port()}", "--token-file", str(missing), "items"])

    assert code == EXIT_USAGE
    assert str(missing) in capsys.readouterr().err


async def test_token_file_beats_a_stale_environment_token(
    cli: Cli, central: RunningCentral, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_library(central.admin)
    monkeypatch.setenv("CS_ADMIN_TOKEN", "token-for-another-central")

    listed = await cli("items")

    assert listed.code == 0, listed.err


def test_field_without_value_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    code = main(["--url", url, "--token", "x", "add", "items", "item_id=DRILL-09", "name"])

    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "name" in err
    assert "FIELD=VALUE" in err


async def test_item_on_unknown_shelf_names_the_shelf(cli: Cli, central: RunningCentral) -> None:
    await seed_library(central.admin)

    refused = await cli("add", "items", "item_id=DRILL-09", "shelf_id=SHELF-Z", "name=Drill")

    assert refused.code == EXIT_REFUSED
    assert "SHELF-Z" in refused.err
