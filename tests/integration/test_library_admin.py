"""Library upkeep against a real central and broker: edits, reprints, CSV imports, printing."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from broker import topics
from broker.labels import DPI, FORMATS, TAG, LabelFormat, make_qr, module_px_for
from broker.local import LocalBroker
from broker.messages import Availability, AvailabilityState, Reason
from central.tokens import Label, Pass
from hardware.decoders import DecoderName, make_decoder
from provisioning.cli import main
from provisioning.errors import EXIT_REFUSED, EXIT_USAGE
from testkit.probe import Probe
from tests.conftest import RunningCentral, seed_library
from tests.integration.test_admin_cli import (
    Cli,
    Outcome,
    decode_png,
    parse_table,
    signer_of,
)
from tests.support.scans import ask, scan

DECODERS: tuple[DecoderName, ...] = ("zxing-cpp", "pyzbar")


async def audit(central: RunningCentral, action: str) -> list[dict[str, Any]]:
    rows = (await central.admin.get("/audit", params={"limit": 10_000})).json()
    return [r for r in rows if r["action"] == action]


async def items(central: RunningCentral) -> dict[str, dict[str, Any]]:
    return {i["item_id"]: i for i in (await central.admin.get("/items")).json()}


async def new_pass(central: RunningCentral, member_id: str = "M-1001") -> str:
    response = await central.admin.post(f"/members/{member_id}/passes", json={})
    response.raise_for_status()
    return str(response.json()["code"])


async def label_code(central: RunningCentral, item_id: str) -> str:
    return str((await central.admin.get(f"/items/{item_id}/label")).json()["code"])


def retained(broker: LocalBroker, topic: str, timeout: float = 1.0) -> bytes | None:
    """The retained message a kiosk connecting now would be handed on ``topic``."""
    fresh = Probe(broker.port, client_id=f"late-{uuid.uuid4().hex[:6]}")
    try:
        fresh.subscribe(topic)
        try:
            return fresh.next(timeout).payload
        except TimeoutError:
            return None
    finally:
        fresh.close()


# --- edits -----------------------------------------------------------------------------------


async def test_moving_an_item_to_maintenance_on_another_shelf_republishes_and_audits(
    cli: Cli, central: RunningCentral, broker: LocalBroker
) -> None:
    await seed_library(central.admin)
    before = retained(broker, topics.availability("SHELF-A", "DRILL-01"))
    assert before is not None

    edited = await cli("edit", "item", "DRILL-01", "--shelf", "SHELF-B", "--state", "maintenance")

    assert edited.code == 0, edited.err
    names, rows = parse_table(edited.out)
    assert names == ["FIELD", "BEFORE", "AFTER"]
    assert {r["FIELD"]: (r["BEFORE"], r["AFTER"]) for r in rows} == {
        "shelf_id": ("SHELF-A", "SHELF-B"),
        "state": ("available", "maintenance"),
    }
    # A kiosk rebooting at the new shelf learns the item's state at once...
    moved = retained(broker, topics.availability("SHELF-B", "DRILL-01"))
    assert moved is not None
    availability = Availability.model_validate_json(moved)
    assert (availability.shelf_id, availability.state) == ("SHELF-B", AvailabilityState.MAINTENANCE)
    assert availability.seq > Availability.model_validate_json(before).seq
    # ...and one at the old shelf is no longer told the item lives there.
    assert retained(broker, topics.availability("SHELF-A", "DRILL-01")) is None
    [row] = await audit(central, "item.edit")
    assert (row["actor"], row["item_id"]) == ("admin:api", "DRILL-01")
    assert row["detail"] == {
        "before": {"shelf_id": "SHELF-A", "state": "available"},
        "after": {"shelf_id": "SHELF-B", "state": "maintenance"},
    }
    assert (await items(central))["DRILL-01"]["state"] == "maintenance"


async def test_item_in_maintenance_is_refused_at_checkout_but_can_be_returned(
    central: RunningCentral, probe: Probe
) -> None:
    await seed_library(central.admin)
    drill = await label_code(central, "DRILL-01")
    probe.subscribe(topics.verdict("KIOSK-A1"))
    assert (await ask(probe, scan("KIOSK-A1", await new_pass(central)))).reason is (
        Reason.SESSION_OPENED
    )
    assert (await ask(probe, scan("KIOSK-A1", drill))).reason is Reason.CHECKED_OUT
    assert (await ask(probe, scan("KIOSK-A1", await new_pass(central, "M-1002")))).session_open

    # Found broken while out: the admin flags it; the member still brings it back.
    edited = await central.admin.patch("/items/DRILL-01", json={"state": "maintenance"})
    assert edited.status_code == 200, edited.text
    probe.subscribe(topics.verdict("KIOSK-B1"))
    # KIOSK-A1 is busy with another member; the front desk's kiosk takes any shelf's returns.
    desk = await central.admin.patch("/kiosks/KIOSK-B1/config", json={"return_point": True})
    assert desk.status_code == 200, desk.text
    returned = await ask(probe, scan("KIOSK-B1", drill))
    assert returned.reason is Reason.RETURNED

    # Back on the shelf but under repair: nobody may take it.
    refused = await ask(probe, scan("KIOSK-A1", drill))
    assert (refused.reason, refused.accepted) == (Reason.ITEM_UNAVAILABLE, False)
    assert (await items(central))["DRILL-01"]["state"] == "maintenance"

    await central.admin.patch("/items/DRILL-01", json={"state": "available"})
    assert (await ask(probe, scan("KIOSK-A1", drill))).reason is Reason.CHECKED_OUT


async def test_member_edits_suspend_and_change_the_limit(
    cli: Cli, central: RunningCentral, probe: Probe
) -> None:
    await seed_library(central.admin)
    probe.subscribe(topics.verdict("KIOSK-A1"))
    issued_before = await new_pass(central, "M-1002")

    suspended = await cli(
        "--json", "edit", "member", "M-1002", "--suspend", "--checkout-limit", "1"
    )

    assert suspended.code == 0, suspended.err
    assert suspended.json() == {
        "before": {"suspended": False, "checkout_limit": 5},
        "after": {"suspended": True, "checkout_limit": 1},
    }
    # A pass issued before the suspension is refused at the kiosk; no new one is issued.
    refused = await ask(probe, scan("KIOSK-A1", issued_before))
    assert refused.reason is Reason.MEMBER_SUSPENDED
    no_pass = await central.admin.post("/members/M-1002/passes", json={})
    assert (no_pass.status_code, no_pass.json()["detail"]["reason"]) == (409, "MEMBER_SUSPENDED")
    listed = await cli("members")
    _, rows = parse_table(listed.out)
    assert {r["MEMBER_ID"]: (r["CHECKOUT_LIMIT"], r["SUSPENDED"]) for r in rows} == {
        "M-1001": ("2", "False"),
        "M-1002": ("1", "True"),
    }

    lifted = await cli("edit", "member", "M-1002", "--unsuspend", "--name", "Grace H.")
    assert lifted.code == 0, lifted.err
    opened = await ask(probe, scan("KIOSK-A1", await new_pass(central, "M-1002")))
    assert (opened.reason, opened.member_name) == (Reason.SESSION_OPENED, "Grace H.")
    details = [r["detail"] for r in await audit(central, "member.edit")]
    assert details == [
        {
            "before": {"suspended": False, "checkout_limit": 5},
            "after": {"suspended": True, "checkout_limit": 1},
        },
        {
            "before": {"name": "Grace", "suspended": True},
            "after": {"name": "Grace H.", "suspended": False},
        },
    ]


async def test_shelf_rename_shows_in_the_shelf_list_and_audit(
    cli: Cli, central: RunningCentral
) -> None:
    await seed_library(central.admin)

    renamed = await cli("edit", "shelf", "SHELF-B", "--name", "Garden and yard")

    assert renamed.code == 0, renamed.err
    listed = await cli("shelves")
    names, rows = parse_table(listed.out)
    assert names == ["SHELF_ID", "NAME", "ITEMS"]
    assert [(r["SHELF_ID"], r["NAME"], r["ITEMS"]) for r in rows] == [
        ("SHELF-A", "Power tools", "2"),
        ("SHELF-B", "Garden and yard", "1"),
    ]
    [row] = await audit(central, "shelf.edit")
    assert row["detail"] == {
        "shelf_id": "SHELF-B",
        "before": {"name": "Garden"},
        "after": {"name": "Garden and yard"},
    }


async def test_edits_that_cannot_work_are_refused_and_change_nothing(
    cli: Cli, central: RunningCentral
) -> None:
    await seed_library(central.admin)

    unknown_shelf = await cli("edit", "item", "DRILL-01", "--shelf", "SHELF-Z", "--name", "X")
    unknown_item = await cli("edit", "item", "DRILL-99", "--name", "X")
    nothing = await cli("edit", "item", "DRILL-01")
    bad_loan = await cli("edit", "item", "DRILL-01", "--loan-days", "0")

    assert (unknown_shelf.code, unknown_item.code) == (EXIT_REFUSED, EXIT_REFUSED)
    assert "shelf SHELF-Z does not exist" in unknown_shelf.err
    assert "404" in unknown_item.err
    assert "DRILL-99" in unknown_item.err
    assert nothing.code == EXIT_USAGE
    assert "nothing to change" in nothing.err
    assert bad_loan.code == EXIT_REFUSED
    assert "loan_days" in bad_loan.err
    drill = (await central.admin.get("/items/DRILL-01")).json()
    assert (drill["name"], drill["shelf_id"], drill["loan_days"]) == (
        "Cordless drill",
        "SHELF-A",
        14,
    )
    # Nothing changed, and each refused attempt is on the record.
    attempts = await audit(central, "item.edit")
    assert [(r["reason"], r["item_id"], r["detail"]["message"]) for r in attempts] == [
        ("REFUSED", "DRILL-01", "shelf SHELF-Z does not exist"),
        ("REFUSED", "DRILL-99", "no item DRILL-99"),
    ]


async def test_refused_additions_are_on_the_record_like_refused_edits(
    central: RunningCentral,
) -> None:
    await seed_library(central.admin)
    attempts = {
        "shelf.add": ("/shelves", {"shelf_id": "SHELF-A", "name": "Again"}),
        "item.add": ("/items", {"item_id": "HOE-01", "shelf_id": "SHELF-Z", "name": "Hoe"}),
        "member.add": ("/members", {"member_id": "M-1001", "name": "Ada again"}),
        "kiosk.enrol": ("/kiosks", {"kiosk_id": "KIOSK-Z1", "shelf_id": "SHELF-Z"}),
    }
    answers = {}
    for action, (path, body) in attempts.items():
        response = await central.admin.post(path, json=body)
        answers[action] = (response.status_code, response.json()["detail"])

    # Each write the database refused: 409 with the reason in words, and one audit row
    # saying who tried what, written the same way for every kind of record.
    assert {status for status, _ in answers.values()} == {409}
    refused = {
        action: [r for r in await audit(central, action) if r["reason"] == "REFUSED"]
        for action in attempts
    }
    assert {a: [r["detail"]["message"] for r in rows] for a, rows in refused.items()} == {
        action: [detail] for action, (_, detail) in answers.items()
    }
    assert refused["item.add"][0]["item_id"] == "HOE-01"
    assert refused["member.add"][0]["member_id"] == "M-1001"
    assert refused["kiosk.enrol"][0]["kiosk_id"] == "KIOSK-Z1"
    assert "HOE-01" not in await items(central)


# --- label reprint -------------------------------------------------------------------------


async def test_reprint_revokes_the_old_label_and_the_new_one_works(
    cli: Cli, central: RunningCentral, probe: Probe
) -> None:
    await seed_library(central.admin)
    old = await label_code(central, "DRILL-01")
    probe.subscribe(topics.verdict("KIOSK-A1"))

    reprinted = await cli("--json", "label", "DRILL-01", "--reprint")

    assert reprinted.code == 0, reprinted.err
    new = reprinted.json()
    assert (new["item_id"], new["version"]) == ("DRILL-01", 2)
    assert new["code"] == await label_code(central, "DRILL-01")
    assert await ask(probe, scan("KIOSK-A1", await new_pass(central))) is not None
    stale = await ask(probe, scan("KIOSK-A1", old))
    assert (stale.reason, stale.accepted) == (Reason.REVOKED, False)
    fresh = await ask(probe, scan("KIOSK-A1", new["code"]))
    assert fresh.reason is Reason.CHECKED_OUT
    [row] = await audit(central, "label.reprint")
    assert row["item_id"] == "DRILL-01"
    assert row["detail"] == {"before": {"label_version": 1}, "after": {"label_version": 2}}


# --- CSV import ------------------------------------------------------------------------------


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"))
    return path


async def test_import_adds_every_row_of_a_good_file(
    cli: Cli, central: RunningCentral, broker: LocalBroker, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    shelves = write_csv(
        tmp_path / "shelves.csv", "shelf_id,name\nSHELF-C,Kitchen\nSHELF-D,Camping\n"
    )
    rows = "\n".join(f"PAN-{n:03d},SHELF-C,Pan {n},{7 + n % 3}" for n in range(40))
    items_csv = write_csv(tmp_path / "items.csv", f"item_id,shelf_id,name,loan_days\n{rows}\n")
    members = write_csv(
        tmp_path / "members.csv",
        'member_id,name,checkout_limit\nM-2001,"Lin, Mei",3\nM-2002,Sam,\n',
    )

    done = [
        await cli("import", "shelves", str(shelves)),
        await cli("--json", "import", "items", str(items_csv), "--progress"),
        await cli("import", "members", str(members)),
    ]

    assert [d.code for d in done] == [0, 0, 0], [d.err for d in done]
    assert done[0].out == f"imported 2 shelves from {shelves}\n"
    assert done[1].json() == {"kind": "items", "imported": 40}
    assert "sending items: 40/40 rows" in done[1].err  # --progress without a terminal
    listed = await items(central)
    assert sorted(i for i in listed if i.startswith("PAN-")) == [f"PAN-{n:03d}" for n in range(40)]
    assert {listed[f"PAN-{n:03d}"]["shelf_id"] for n in range(40)} == {"SHELF-C"}
    assert (await central.admin.get("/items/PAN-004")).json()["loan_days"] == 8
    people = {m["member_id"]: m for m in (await central.admin.get("/members")).json()}
    assert (people["M-2001"]["name"], people["M-2001"]["checkout_limit"]) == ("Lin, Mei", 3)
    assert people["M-2002"]["checkout_limit"] == 5  # blank: central's default
    assert len(await audit(central, "item.import")) == 40
    # Kiosks at the new shelf see the new items without asking.
    copy = retained(broker, topics.availability("SHELF-C", "PAN-039"))
    assert copy is not None
    assert Availability.model_validate_json(copy).state is AvailabilityState.AVAILABLE


async def test_import_of_a_bad_file_reports_every_bad_row_and_imports_nothing(
    cli: Cli, central: RunningCentral, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    bad = write_csv(
        tmp_path / "items.csv",
        """
item_id,shelf_id,name,loan_days
KETTLE-01,SHELF-A,Kettle,7
DRILL-01,SHELF-A,Already here,7
kettle-02,SHELF-A,Lower case id,7
KETTLE-03,SHELF-Z,On no shelf,7
KETTLE-01,SHELF-B,Twice in the file,7
KETTLE-05,SHELF-A,Loan,many
KETTLE-06,SHELF-A,,14
KETTLE-07,SHELF-A
""",
    )

    refused = await cli("import", "items", str(bad))
    as_json = await cli("--json", "import", "items", str(bad))

    assert (refused.code, as_json.code) == (EXIT_USAGE, EXIT_USAGE)
    table = refused.err.split("bad arguments:")[0]
    _, rows = parse_table(table)
    problems = {(r["LINE"], r["COLUMN"]): r["MESSAGE"] for r in rows}
    assert set(problems) == {
        ("4", "item_id"),
        ("7", "loan_days"),
        ("8", "name"),
        ("9", "*"),
    }, "the file's own rules come first; central is asked only about a well-formed file"
    assert "not a whole number" in problems[("7", "loan_days")]
    assert "not a valid id" in problems[("4", "item_id")]
    assert "nothing imported" in refused.err
    assert as_json.json()["imported"] == 0
    assert {(p["line"], p["column"]) for p in as_json.json()["problems"]} == {
        (4, "item_id"),
        (7, "loan_days"),
        (8, "name"),
        (9, "*"),
    }

    # With the shape fixed, what only central can know: existing ids, shelves, duplicates.
    fixed = write_csv(
        tmp_path / "fixed.csv",
        """
item_id,shelf_id,name,loan_days
KETTLE-01,SHELF-A,Kettle,7
DRILL-01,SHELF-A,Already here,7
KETTLE-03,SHELF-Z,On no shelf,7
KETTLE-01,SHELF-B,Twice in the file,7
KETTLE-05,SHELF-A,Loan,
""",
    )
    second = await cli("--json", "import", "items", str(fixed))
    assert second.code == EXIT_USAGE
    assert {(p["line"], p["column"]): p["message"] for p in second.json()["problems"]} == {
        (3, "item_id"): "DRILL-01 already exists in central",
        (4, "shelf_id"): "shelf SHELF-Z does not exist",
        (5, "item_id"): "KETTLE-01 is also on line 2",
    }
    assert sorted(await items(central)) == ["DRILL-01", "RAKE-01", "SAW-01"]
    assert await audit(central, "item.import") == []


async def test_import_twice_refuses_the_second_time_and_changes_nothing(
    cli: Cli, central: RunningCentral, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    members = write_csv(tmp_path / "members.csv", "member_id,name\nM-3001,Kim\nM-3002,Lee\n")
    assert (await cli("import", "members", str(members))).code == 0

    again = await cli("--json", "import", "members", str(members))

    assert again.code == EXIT_USAGE
    assert [(p["line"], p["message"]) for p in again.json()["problems"]] == [
        (2, "M-3001 already exists in central"),
        (3, "M-3002 already exists in central"),
    ]
    listed = [m["member_id"] for m in (await central.admin.get("/members")).json()]
    assert listed == ["M-1001", "M-1002", "M-3001", "M-3002"]
    assert len(await audit(central, "member.import")) == 2


async def test_central_refuses_a_bulk_import_with_one_bad_row_as_a_whole(
    central: RunningCentral,
) -> None:
    # What central does when a client skipped the checks, or another admin added an id
    # between the client's check and the import: one transaction, nothing lands.
    await seed_library(central.admin)
    rows = [
        {"item_id": f"CUP-{n:02d}", "shelf_id": "SHELF-A", "name": f"Cup {n}"} for n in range(30)
    ]
    rows[17]["shelf_id"] = "SHELF-Z"
    rows[23]["item_id"] = "SAW-01"

    refused = await central.admin.post("/items/import", json={"rows": rows})

    assert refused.status_code == 409
    assert refused.json()["detail"]["problems"] == [
        {"row": 17, "column": "shelf_id", "message": "shelf SHELF-Z does not exist"},
        {"row": 23, "column": "item_id", "message": "SAW-01 already exists"},
    ]
    assert sorted(await items(central)) == ["DRILL-01", "RAKE-01", "SAW-01"]
    assert await audit(central, "item.import") == []
    [attempt] = await audit(central, "import")
    assert (attempt["reason"], attempt["detail"]["kind"]) == ("REFUSED", "items")
    assert attempt["detail"]["problems"] == refused.json()["detail"]["problems"]


# --- printing --------------------------------------------------------------------------------


async def library_of(central: RunningCentral, count: int) -> list[str]:
    await seed_library(central.admin)
    await central.admin.post("/shelves", json={"shelf_id": "SHELF-T", "name": "Tools"})
    rows = [
        {"item_id": f"TOOL-{n:03d}", "shelf_id": "SHELF-T", "name": f"Tool number {n}"}
        for n in range(count)
    ]
    (await central.admin.post("/items/import", json={"rows": rows})).raise_for_status()
    return [r["item_id"] for r in rows]


def decode_cells(
    pages: list[Path], labels: list[dict[str, Any]], fmt: LabelFormat = TAG
) -> dict[str, list[list[str]]]:
    """Each decoder's reading of every label cell, cropped from the page it was printed on."""
    images = [np.asarray(Image.open(p).convert("L"), dtype=np.uint8) for p in pages]
    read: dict[str, list[list[str]]] = {name: [] for name in DECODERS}
    per_page = fmt.per_page
    for index, label in enumerate(labels):
        assert (label["page"], label["cell"]) == (index // per_page + 1, index % per_page + 1)
        left, top, right, bottom = fmt.cell_box(index)
        cell = images[label["page"] - 1][top:bottom, left:right]
        for name in DECODERS:
            read[name].append(make_decoder(name).decode(np.ascontiguousarray(cell)))
    return read


def rasterise_pdf(pdf: Path, prefix: Path) -> list[Path]:
    """The PDF's pages as 300 dpi greyscale PNGs (``pdftoppm`` from poppler-utils)."""
    subprocess.run(["pdftoppm", "-r", "300", "-gray", "-png", str(pdf), str(prefix)], check=True)
    return sorted(prefix.parent.glob(f"{prefix.name}-*.png"))


async def test_label_sheet_for_a_shelf_decodes_to_the_codes_central_accepts(
    cli: Cli, central: RunningCentral, probe: Probe, tmp_path: Path
) -> None:
    wanted = await library_of(central, 30)
    png = tmp_path / "sheet.png"
    pdf = tmp_path / "sheet.pdf"

    printed = await cli("--json", "labels", "--shelf", "SHELF-T", "--out", str(png))
    as_pdf = await cli("labels", "--shelf", "SHELF-T", "--out", str(pdf))

    assert printed.code == 0, printed.err
    assert as_pdf.code == 0, as_pdf.err
    result = printed.json()
    # Tags by default: 12 a page, so 30 labels take three pages.
    assert result["files"] == [
        str(png),
        str(tmp_path / "sheet-2.png"),
        str(tmp_path / "sheet-3.png"),
    ]
    labels = result["labels"]
    assert [label["item_id"] for label in labels] == wanted
    issued = [await label_code(central, item) for item in wanted]
    read = decode_cells([Path(f) for f in result["files"]], labels)
    assert read == {name: [[code] for code in issued] for name in DECODERS}
    signer = signer_of(central)
    now = datetime.now(UTC)
    assert [signer.verify(code, now) for code in issued] == [Label(i, 1) for i in wanted]
    # Big enough for a kiosk at arm's length: at least 1.5 mm per module (20 px at 300 dpi).
    left, top, right, bottom = TAG.cell_box(0)
    modules = [module_px_for(make_qr(code), bottom - top, right - left) for code in issued]
    assert min(modules) * 25.4 / DPI >= 1.5
    with Image.open(png) as page:
        assert page.size == (2480, 3508)
        assert page.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    # The PDF holds the same two pages.
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", data)) == 3
    assert "30 labels on 3 page(s), tag format" in as_pdf.out
    if shutil.which("pdftoppm") is not None:  # poppler-utils: rasterise it as a printer would
        rendered = await asyncio.to_thread(rasterise_pdf, pdf, tmp_path / "pdf")
        assert len(rendered) == 3
        assert decode_cells(rendered, labels) == read

    # A printed label, scanned at a real kiosk, checks the item out.
    probe.subscribe(topics.verdict("KIOSK-A1"))
    await ask(probe, scan("KIOSK-A1", await new_pass(central)))
    assert (await ask(probe, scan("KIOSK-A1", read["pyzbar"][29][0]))).reason is Reason.CHECKED_OUT


async def test_the_small_sheet_format_prints_the_same_codes_24_a_page(
    cli: Cli, central: RunningCentral, tmp_path: Path
) -> None:
    # Labels printed before the tag (24 a page) and tags printed now carry the same code:
    # the format is only the print, so a shelf of old labels keeps working.
    wanted = await library_of(central, 30)
    png = tmp_path / "small.png"

    printed = await cli(
        "--json", "labels", "--shelf", "SHELF-T", "--format", "sheet", "--out", str(png)
    )

    assert printed.code == 0, printed.err
    result = printed.json()
    assert result["files"] == [str(png), str(tmp_path / "small-2.png")]
    read = decode_cells([Path(f) for f in result["files"]], result["labels"], FORMATS["sheet"])
    issued = [await label_code(central, item) for item in wanted]
    assert read == {name: [[code] for code in issued] for name in DECODERS}


async def test_label_sheet_reprint_prints_new_versions_and_old_ones_stop(
    cli: Cli, central: RunningCentral, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    old = await label_code(central, "SAW-01")
    png = tmp_path / "sheet.png"

    printed = await cli(
        "--json", "labels", "--items", "SAW-01,DRILL-01", "--out", str(png), "--reprint"
    )

    assert printed.code == 0, printed.err
    labels = printed.json()["labels"]
    assert [(label["item_id"], label["version"]) for label in labels] == [
        ("SAW-01", 2),
        ("DRILL-01", 2),
    ]
    read = decode_cells([png], labels)
    assert read["zxing-cpp"] == [
        [await label_code(central, "SAW-01")],
        [await label_code(central, "DRILL-01")],
    ]
    assert read["zxing-cpp"][0] != [old]
    assert len(await audit(central, "label.reprint")) == 2


async def test_label_sheet_for_unknown_items_is_refused_before_printing(
    cli: Cli, central: RunningCentral, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    out = tmp_path / "sheet.pdf"

    refused = await cli("labels", "--items", "SAW-01,NOPE-1", "--out", str(out))

    assert refused.code == EXIT_USAGE
    assert "NOPE-1" in refused.err
    assert not out.exists()


def rasterise_rect_svg(svg: str) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Paint an SVG made of filled rects (all a pass's QR is) into a greyscale frame."""
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    image = Image.new("L", (int(root.attrib["width"]), int(root.attrib["height"])), 255)
    draw = ImageDraw.Draw(image)
    for group in root.iter(f"{ns}g"):
        fill = 0 if group.attrib.get("fill") == "#000" else None
        for rect in group.iter(f"{ns}rect"):
            x, y = float(rect.attrib["x"]), float(rect.attrib["y"])
            w, h = float(rect.attrib["width"]), float(rect.attrib["height"])
            if fill is not None:
                draw.rectangle((x, y, x + w - 1, y + h - 1), fill=fill)
    return np.asarray(image, dtype=np.uint8)


async def test_pass_card_png_and_svg_decode_to_passes_central_accepts(
    cli: Cli, central: RunningCentral, probe: Probe, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    png, svg = tmp_path / "pass.png", tmp_path / "pass.svg"

    as_png = await cli("--json", "pass", "M-1001", "--out", str(png))
    as_svg = await cli("--json", "pass", "M-1002", "--out", str(svg))

    assert (as_png.code, as_svg.code) == (0, 0), as_png.err + as_svg.err
    issued = as_png.json()
    assert decode_png(png) == {"zxing-cpp": [issued["code"]], "pyzbar": [issued["code"]]}
    text = svg.read_text()
    assert "Grace" in text
    assert "valid until" in text
    frame = rasterise_rect_svg(text)
    svg_pass = as_svg.json()
    assert {name: make_decoder(name).decode(frame) for name in DECODERS} == {
        name: [svg_pass["code"]] for name in DECODERS
    }
    expires_at = datetime.fromisoformat(svg_pass["expires_at"])
    assert signer_of(central).verify(svg_pass["code"], datetime.now(UTC)) == Pass(
        svg_pass["pass_id"], "M-1002", expires_at
    )
    # The card a member shows opens a session at a real kiosk.
    probe.subscribe(topics.verdict("KIOSK-A1"))
    opened = await ask(probe, scan("KIOSK-A1", decode_png(png)["pyzbar"][0]))
    assert (opened.reason, opened.member_name) == (Reason.SESSION_OPENED, "Ada")
    with Image.open(png) as card:
        assert card.size[0] >= 600


# --- help on every command -------------------------------------------------------------------

COMMANDS = [
    [],
    ["shelves"],
    ["members"],
    ["edit"],
    ["edit", "item"],
    ["edit", "shelf"],
    ["edit", "member"],
    ["import"],
    ["labels"],
    ["label"],
    ["pass"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "cs-admin")
def test_every_command_has_help(command: list[str]) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert out.getvalue().startswith("usage: cs-admin")
    assert len(out.getvalue().splitlines()) > 3


def test_import_of_a_missing_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--url", "http://127.0.0.1:9", "--token", "x", "import", "items", str(tmp_path / "no.csv")]
    )
    assert code == EXIT_USAGE
    assert "no.csv" in capsys.readouterr().err


def test_import_of_a_file_missing_a_column_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "items.csv", "item_id,name,colour\nA-1,Drill,red\n")
    code = main(
        ["--url", "http://127.0.0.1:9", "--token", "x", "--json", "import", "items", str(path)]
    )
    assert code == EXIT_USAGE
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert problems == [
        {"line": 1, "column": "shelf_id", "message": "missing column"},
        {"line": 1, "column": "colour", "message": "unknown column"},
    ]


async def test_progress_is_quiet_when_not_asked_and_not_a_terminal(
    cli: Cli, central: RunningCentral, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    shelves = write_csv(tmp_path / "s.csv", "shelf_id,name\nSHELF-Q,Quiet\n")
    done: Outcome = await cli("import", "shelves", str(shelves))
    assert done.code == 0
    assert done.err == ""
