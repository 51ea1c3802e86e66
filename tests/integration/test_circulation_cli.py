"""``cs-admin`` circulation commands against a real central on both backends: policies,
training, agreements, settings, holds, reservations and repair tickets, each audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from provisioning.errors import EXIT_REFUSED
from tests.conftest import RunningCentral, seed_library
from tests.integration.test_admin_cli import Cli, parse_table


async def test_the_admin_guide_circulation_commands(
    cli: Cli, central: RunningCentral, tmp_path: Path
) -> None:
    await seed_library(central.admin)
    policy = await cli(
        "policy", "set", "saws", "--loan-days", "3", "--max-renewals", "1", "--needs-training"
    )
    assert policy.code == 0, policy.err
    assert (await cli("policy", "file", "SAW-01", "saws")).code == 0
    assert (await cli("training", "record", "M-1001", "saws")).code == 0
    listed = await cli("policy", "list")
    _, rows = parse_table(listed.out)
    assert [(r["NAME"], r["LOAN_DAYS"], r["NEEDS_TRAINING"]) for r in rows] == [
        ("saws", "3", "True")
    ]
    agreement = tmp_path / "agreement.txt"
    agreement.write_text("Bring tools back clean and on time.\n")
    published = await cli("--json", "agreement", "publish", str(agreement))
    assert published.code == 0, published.err
    assert published.json() == {"version": 1}
    assert (await cli("--json", "agreement", "accept", "M-1001")).json() == {"version": 1}
    settings = await cli("--json", "circulation", "set", "--hold-hours", "24")
    assert settings.json()["hold_hours"] == 24
    assert (await cli("--json", "circulation", "show")).json()["hold_hours"] == 24

    # The drill is on its shelf: Grace's hold is ready at once; Ada's waits behind it.
    grace = (await cli("--json", "holds", "place", "DRILL-01", "M-1002")).json()
    assert (grace["state"], grace["placed_via"]) == ("ready", "admin")
    assert (await cli("holds", "place", "DRILL-01", "M-1001")).code == 0
    queue = await cli("holds", "list", "--item", "DRILL-01")
    _, rows = parse_table(queue.out)
    assert [(r["MEMBER_ID"], r["STATE"]) for r in rows] == [
        ("M-1002", "ready"),
        ("M-1001", "waiting"),
    ]
    assert (await cli("holds", "cancel", str(grace["hold_id"]))).code == 0
    passed = (await cli("--json", "holds", "list", "--item", "DRILL-01")).json()
    assert [(h["member_id"], h["state"]) for h in passed] == [("M-1001", "ready")]
    # No mail told Ada (the reminders are off here), so her hold cannot run out until a
    # volunteer phones her and records it; then its clock starts, and only once.
    assert passed[0]["notified_at"] is None
    ada_hold = str(passed[0]["hold_id"])
    assert (await cli("holds", "told", ada_hold, "--how", "phoned")).code == 0
    told = (await cli("--json", "holds", "list", "--item", "DRILL-01")).json()
    assert told[0]["notified_at"] is not None
    assert (await cli("holds", "told", ada_hold)).code == EXIT_REFUSED
    unknown = await cli("holds", "place", "DRILL-01", "M-9999")
    assert unknown.code == EXIT_REFUSED

    start = datetime.now(UTC) + timedelta(days=5)
    booked = await cli(
        "--json",
        "reservations",
        "add",
        "SAW-01",
        "M-1002",
        start.isoformat(),
        (start + timedelta(days=1)).isoformat(),
    )
    assert booked.code == 0, booked.err
    clash = await cli(
        "reservations",
        "add",
        "SAW-01",
        "M-1001",
        (start + timedelta(hours=12)).isoformat(),
        (start + timedelta(days=2)).isoformat(),
    )
    assert clash.code == EXIT_REFUSED
    upcoming = (await cli("--json", "reservations", "list")).json()
    assert [r["member_id"] for r in upcoming] == ["M-1002"]
    reservation_id = str(booked.json()["reservation_id"])
    assert (await cli("reservations", "cancel", reservation_id)).code == 0
    assert (await cli("--json", "reservations", "list")).json() == []

    ticket = (await cli("--json", "tickets", "open", "RAKE-01", "--note", "bent tines")).json()
    assert ticket["note"] == "bent tines"
    items = {i["item_id"]: i["state"] for i in (await central.admin.get("/items")).json()}
    assert items["RAKE-01"] == "maintenance"
    assert (await cli("tickets", "close", str(ticket["ticket_id"]))).code == 0
    assert (await cli("--json", "tickets", "list")).json() == []
    every = (await cli("--json", "tickets", "list", "--all")).json()
    assert [t["closed_by"] for t in every] == ["admin:api"]

    audit = (await central.admin.get("/audit", params={"limit": 200})).json()
    actions = {row["action"] for row in audit}
    assert {
        "category.put",
        "item.category",
        "training.record",
        "agreement.publish",
        "agreement.accept",
        "circulation.settings",
        "hold.place",
        "hold.cancel",
        "hold.pass_on",
        "hold.told",
        "reservation.add",
        "reservation.cancel",
        "ticket.open",
        "ticket.close",
    } <= actions
