"""The staff console over HTTP on both backends: sign-in, roles, CSRF, audit, services shared."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from broker.local import LocalBroker
from tests.conftest import RunningCentral, backend_settings, seed_library, start_central
from tests.integration.test_admin_cli import run_cli
from tests.support.staff import csrf, invite, staff_client


@pytest.fixture(params=["sqlite", "postgres"])
async def central(request: pytest.FixtureRequest, tmp_path: Path, broker: LocalBroker):  # type: ignore[no-untyped-def]
    # The console's origin is central's own admin address by default (http://127.0.0.1:port).
    async with (
        backend_settings(request.param, tmp_path, broker) as settings,
        start_central(settings) as running,
    ):
        await seed_library(running.admin)
        yield running


async def audit(central: RunningCentral) -> list[dict[str, object]]:
    return list((await central.admin.get("/audit", params={"limit": 500})).json())


async def test_a_volunteer_adds_an_item_and_is_refused_an_admin_action_which_is_audited(
    central: RunningCentral,
) -> None:
    async with staff_client(central, "vera@example.org", "Vera", "volunteer") as vera:
        token = await csrf(vera)
        library = await vera.get("/staff/library", params={"q": "drill"})
        assert "Cordless drill" in library.text
        assert "Jigsaw" not in library.text  # the search narrowed the page
        assert "<p>1 item</p>" in library.text  # counted in words a volunteer reads

        added = await vera.post(
            "/staff/items",
            data={"item_id": "LADDER-01", "shelf_id": "SHELF-B", "name": "Ladder", "csrf": token},
        )
        assert added.status_code == 200, added.text
        # The same service as the admin API: the item is there, and the write is audited by name.
        assert (await central.admin.get("/items/LADDER-01")).json()["name"] == "Ladder"
        shelf = await vera.post(
            "/staff/shelves", data={"shelf_id": "SHELF-C", "name": "Ladders", "csrf": token}
        )
        assert shelf.status_code == 200, shelf.text
        shelves = {s["shelf_id"] for s in (await central.admin.get("/shelves")).json()}
        assert "SHELF-C" in shelves
        bad = await vera.post(
            "/staff/shelves", data={"shelf_id": "shelf c", "name": "x", "csrf": token}
        )
        assert bad.status_code == 422
        rows = await audit(central)
        assert any(r["action"] == "item.add" and r["actor"] == "staff:Vera" for r in rows)
        signins = [r["detail"] for r in rows if r["action"] == "staff.signin"]
        assert [d["via"] for d in signins] == ["link"]  # type: ignore[index]

        # Throwing the kill switch is an admin's: refused (403), and the refusal is audited.
        refused = await vera.post(
            "/staff/kill", data={"reason": "try", "confirm": "yes", "csrf": token}
        )
        assert refused.status_code == 403
        assert refused.json()["detail"]["reason"] == "ROLE_REQUIRED"
        flag = (await central.admin.get("/rollout/flag")).json()
        assert flag["mode"] != "off" or flag["changed_by"] != "admin:Vera"
        rows = await audit(central)
        assert any(
            r["action"] == "staff.refused"
            and r["actor"] == "staff:Vera"
            and r["reason"] == "ROLE_REQUIRED"
            for r in rows
        )
        assert (await vera.get("/staff/ops")).status_code == 403


async def test_a_write_without_the_session_csrf_token_is_refused(central: RunningCentral) -> None:
    async with staff_client(central, "vera@example.org", "Vera", "volunteer") as vera:
        forged = await vera.post(
            "/staff/items", data={"item_id": "X-1", "shelf_id": "SHELF-A", "name": "X"}
        )
        assert forged.status_code == 403
        assert forged.json()["detail"]["reason"] == "BAD_CSRF"
        wrong = await vera.post(
            "/staff/items",
            data={"item_id": "X-1", "shelf_id": "SHELF-A", "name": "X", "csrf": "0" * 43},
        )
        assert wrong.status_code == 403
        # Another site's page posting with the victim's cookie: its Origin gives it away.
        token = await csrf(vera)
        cross = await vera.post(
            "/staff/items",
            data={"item_id": "X-1", "shelf_id": "SHELF-A", "name": "X", "csrf": token},
            headers={"Origin": "https://evil.example"},
        )
        assert cross.status_code == 403
        assert (await central.admin.get("/items/X-1")).status_code == 404


async def test_an_admin_switches_checkout_off_and_a_disabled_account_is_out_at_once(
    central: RunningCentral,
) -> None:
    async with staff_client(central, "ada@example.org", "Ada", "admin") as ada:
        token = await csrf(ada)
        unconfirmed = await ada.post(
            "/staff/flag", data={"mode": "off", "reason": "x", "csrf": token}
        )
        assert unconfirmed.status_code == 422  # no confirmation, no change
        off = await ada.post(
            "/staff/flag",
            data={"mode": "off", "reason": "stocktake", "confirm": "yes", "csrf": token},
        )
        assert off.status_code == 200, off.text
        flag = (await central.admin.get("/rollout/flag")).json()
        assert (flag["mode"], flag["changed_by"]) == ("off", "admin:Ada")
        assert "No alerts." in (await ada.get("/staff/ops")).text
        if central.settings.database == "sqlite":
            # A security alert as the abuse defences write it: listed on Operations.
            with sqlite3.connect(central.settings.sqlite_file) as db:
                db.execute(
                    "INSERT INTO qr_audit_log (at, actor, action, reason, kiosk_id, detail)"
                    " VALUES (?, 'system', 'security.alert', 'kiosk_auto_blocked', 'KIOSK-B1',"
                    " '{\"failures\": 20}')",
                    (datetime.now(UTC).isoformat(),),
                )
            ops = (await ada.get("/staff/ops")).text
            assert "kiosk_auto_blocked" in ops
            assert "KIOSK-B1" in ops

        staff = (await central.admin.get("/staff-accounts")).json()
        ada_id = next(s["staff_id"] for s in staff if s["email"] == "ada@example.org")
        (await central.admin.post(f"/staff-accounts/{ada_id}/disable")).raise_for_status()
        assert (await ada.get("/staff/ops")).status_code == 401


async def test_a_sign_in_link_works_once_and_pages_send_strangers_to_sign_in(
    central: RunningCentral,
) -> None:
    link = await invite(central, "vera@example.org", "Vera", "volunteer")
    base = link.split("/staff/", 1)[0]
    async with httpx.AsyncClient(base_url=base, timeout=10) as stranger:
        page = await stranger.get("/staff/", headers={"Accept": "text/html"})
        assert (page.status_code, page.headers["location"]) == (303, "/staff/signin")
        assert (await stranger.get("/staff/events")).status_code == 401
        followed = await stranger.get(link)
        assert followed.status_code == 303
        # The session cookie: out of scripts' reach, not sent by other sites' pages, a shift long.
        cookie = followed.headers["set-cookie"].lower()
        assert "cs_staff=" in cookie
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "max-age=43200" in cookie
        async with httpx.AsyncClient(base_url=base, timeout=10) as replay:
            assert (await replay.get(link)).status_code == 400  # spent


async def test_a_csv_import_reports_every_bad_row_and_adds_none_until_all_are_good(
    central: RunningCentral,
) -> None:
    async with staff_client(central, "vera@example.org", "Vera", "volunteer") as vera:
        token = await csrf(vera)
        bad = (
            "item_id,shelf_id,name,loan_days\n"
            "TENT-01,SHELF-B,Tent,7\n"
            "tent 02,SHELF-B,Tent,7\n"  # not an id
            "TENT-03,SHELF-B,,7\n"  # no name
        )
        refused = await vera.post(
            "/staff/items/import",
            files={"file": ("items.csv", bad.encode(), "text/csv")},
            data={"csrf": token},
        )
        assert refused.status_code == 422, refused.text
        problems = refused.json()["detail"]["problems"]
        assert [(p["row"], p["column"]) for p in problems] == [(3, "item_id"), (4, "name")]
        assert (await central.admin.get("/items/TENT-01")).status_code == 404  # none added

        good = bad.replace("tent 02", "TENT-02").replace("SHELF-B,,7", "SHELF-B,Tent,7")
        added = await vera.post(
            "/staff/items/import",
            files={"file": ("items.csv", good.encode(), "text/csv")},
            data={"csrf": token},
        )
        assert added.status_code == 200, added.text
        assert added.json()["imported"] == 3
        assert (await central.admin.get("/items/TENT-03")).json()["shelf_id"] == "SHELF-B"


async def test_a_volunteer_suspends_a_member_and_prints_labels_and_a_pass_card(
    central: RunningCentral,
) -> None:
    async with staff_client(central, "vera@example.org", "Vera", "volunteer") as vera:
        token = await csrf(vera)
        found = await vera.get("/staff/members", params={"q": "grace"})
        assert "M-1002" in found.text
        assert "M-1001" not in found.text
        assert "<p>1 member</p>" in found.text
        suspended = await vera.post(
            "/staff/members/M-1002/edit", data={"suspended": "yes", "csrf": token}
        )
        assert suspended.status_code == 200, suspended.text
        assert (await central.admin.get("/members/M-1002")).json()["suspended"] is True
        # A suspended member gets no pass card: the service's own refusal.
        refused = await vera.post("/staff/members/M-1002/card.pdf", data={"csrf": token})
        assert refused.status_code == 409
        card = await vera.post("/staff/members/M-1001/card.pdf", data={"csrf": token})
        assert card.headers["content-type"] == "application/pdf"
        assert card.content.startswith(b"%PDF")
        sheet = await vera.get("/staff/labels.pdf", params={"shelf": "SHELF-A"})
        assert sheet.content.startswith(b"%PDF")


async def test_cs_admin_invites_lists_and_disables_staff(
    central: RunningCentral, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        *("--url", f"http://127.0.0.1:{central.settings.admin_port}"),
        *("--token-file", str(central.settings.data_dir / "admin.token")),
    ]
    invited = await run_cli(
        capsys,
        [
            *base,
            "--json",
            "staff",
            "invite",
            "ada@example.org",
            "--name",
            "Ada",
            "--role",
            "admin",
            "--print-link",
        ],
    )
    assert invited.code == 0, invited.err
    answer = json.loads(invited.out)
    assert answer["role"] == "admin"
    async with httpx.AsyncClient(timeout=10) as browser:
        assert (await browser.get(answer["link"])).status_code == 303  # the link signs Ada in
        assert (
            await browser.get(answer["link"].rsplit("/staff/", 1)[0] + "/staff/ops")
        ).status_code == 200
    listed = await run_cli(capsys, [*base, "staff", "list"])
    assert "Ada" in listed.out
    assert "admin" in listed.out
    off = await run_cli(capsys, [*base, "staff", "disable", answer["staff_id"]])
    assert off.code == 0, off.err
    missing = await run_cli(capsys, [*base, "staff", "disable", "S-NOBODY"])
    assert missing.code == 1
    rows = await audit(central)
    assert {"staff.invite", "staff.disable"} <= {str(r["action"]) for r in rows}


async def test_the_consoles_paged_searches_are_the_admin_apis_too(
    central: RunningCentral, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = central.admin
    items = (await admin.get("/items/search", params={"q": "saw"})).json()
    assert (items["total"], [r["item_id"] for r in items["rows"]]) == (1, ["SAW-01"])
    assert items["rows"][0]["state"] == "available"
    members = (await admin.get("/members/search", params={"q": "ada"})).json()
    assert [r["member_id"] for r in members["rows"]] == ["M-1001"]
    shelf = (await admin.get("/items/search", params={"shelf": "SHELF-B"})).json()
    assert [r["item_id"] for r in shelf["rows"]] == ["RAKE-01"]
    # LIKE's wildcards are taken literally.
    assert (await admin.get("/items/search", params={"q": "%"})).json()["total"] == 0
    assert (await admin.get("/loans/open")).json() == {
        "rows": [],
        "total": 0,
        "page": 1,
        "pages": 1,
    }
    assert (await admin.get("/audit/alerts")).json() == []
    listed = await run_cli(
        capsys,
        [
            *("--url", f"http://127.0.0.1:{central.settings.admin_port}"),
            *("--token-file", str(central.settings.data_dir / "admin.token")),
            *("loans", "open", "--search", "ada"),
        ],
    )
    assert listed.code == 0, listed.err
    assert "page 1 of 1 (0 open loans)" in listed.out


async def test_an_admin_runs_the_fleet_from_the_console_each_action_audited_by_name(
    central: RunningCentral,
) -> None:
    async with staff_client(central, "ada@example.org", "Ada", "admin") as ada:
        token = await csrf(ada)

        async def post(path: str, **form: str) -> dict[str, object]:
            answer = await ada.post(path, data={**form, "csrf": token})
            assert answer.status_code == 200, (path, answer.text)
            return dict(answer.json())

        assert "offline now" in str((await post("/staff/kiosks/KIOSK-A1/identify"))["message"])
        await post("/staff/kiosks/KIOSK-A1/block", reason="odd scans", minutes="30")
        kiosk = (await central.admin.get("/kiosks/KIOSK-A1")).json()
        assert kiosk["blocked"] is True
        await post("/staff/kiosks/KIOSK-A1/unblock", reason="checked")
        assert (await central.admin.get("/kiosks/KIOSK-A1")).json()["blocked"] is False
        await post("/staff/kiosks/KIOSK-A1/configure", session_timeout_s="90")
        config = (await central.admin.get("/kiosks/KIOSK-A1")).json()["config"]
        assert config["session_timeout_s"] == 90
        # Retiring needs a reason and the box ticked.
        unticked = await ada.post(
            "/staff/kiosks/KIOSK-B1/retire", data={"reason": "stolen", "csrf": token}
        )
        assert unticked.status_code == 422
        await post("/staff/kiosks/KIOSK-B1/retire", reason="stolen", confirm="yes")
        assert (await central.admin.get("/kiosks/KIOSK-B1")).json()["retired"] is True
        enrol = await post("/staff/enrol", kiosk_id="KIOSK-C1", shelf_id="SHELF-A")
        assert str(enrol["qr"]).startswith("<svg")
        assert "audit chain intact" in str((await post("/staff/audit/verify"))["message"])
        exported = await ada.get("/staff/audit/export")
        lines = [json.loads(line) for line in exported.text.splitlines()]
        assert any(r["action"] == "kiosk.retire" and r["actor"] == "staff:Ada" for r in lines)
    rows = await audit(central)
    by_ada = {str(r["action"]) for r in rows if r["actor"] == "staff:Ada"}
    assert {
        "kiosk.identify",
        "kiosk.block",
        "kiosk.unblock",
        "kiosk.configure",
        "kiosk.retire",
        "kiosk.enrol_code",
    } <= by_ada


async def test_a_volunteer_files_an_item_and_records_training_and_the_agreement(
    central: RunningCentral,
) -> None:
    admin = central.admin
    category = {"name": "power", "needs_training": True, "needs_agreement": True}
    (await admin.put("/policies/categories", json=category)).raise_for_status()
    (
        await admin.post("/policies/agreements", json={"text": "Bring it back clean."})
    ).raise_for_status()
    async with staff_client(central, "vera@example.org", "Vera", "volunteer") as vera:
        token = await csrf(vera)
        for path, form in (
            ("/staff/items/DRILL-01/category", {"category": "power"}),
            ("/staff/members/M-1001/training", {"category": "power"}),
            ("/staff/members/M-1001/agreement", {}),
        ):
            answer = await vera.post(path, data={**form, "csrf": token})
            assert answer.status_code == 200, (path, answer.text)
        unknown = await vera.post(
            "/staff/members/M-1001/training", data={"category": "lasers", "csrf": token}
        )
        assert unknown.status_code == 404
    actions = {str(r["action"]) for r in await audit(central) if r["actor"] == "staff:Vera"}
    assert {"item.category", "training.record", "agreement.accept"} <= actions


async def test_a_volunteer_records_that_a_member_was_told_their_hold_is_ready(
    central: RunningCentral,
) -> None:
    # Members the reminders cannot reach (no address, a bounce) are phoned from the desk:
    # the console shows the ready hold as not told, and recording the call starts its clock.
    placed = await central.admin.post("/holds", json={"item_id": "DRILL-01", "member_id": "M-1002"})
    hold_id = placed.json()["hold_id"]
    assert placed.json()["state"] == "ready"
    async with staff_client(central, "vera@example.org", "Vera", "volunteer") as vera:
        page = await vera.get("/staff/circulation")
        assert "member not told yet" in page.text
        token = await csrf(vera)
        told = await vera.post(
            f"/staff/holds/{hold_id}/told", data={"how": "phoned", "csrf": token}
        )
        assert told.status_code == 200, told.text
        again = await vera.post(f"/staff/holds/{hold_id}/told", data={"csrf": token})
        assert again.status_code == 409
        assert "member not told yet" not in (await vera.get("/staff/circulation")).text
    (hold,) = (await central.admin.get("/holds", params={"item_id": "DRILL-01"})).json()
    assert hold["notified_at"] is not None
    rows = [r for r in await audit(central) if r["action"] == "hold.told"]
    assert [(r["actor"], r["detail"]) for r in rows] == [
        ("staff:Vera", {"hold_id": hold_id, "how": "phoned"})
    ]


async def test_the_library_page_asks_one_items_line_signed_in_only(
    central: RunningCentral,
) -> None:
    # The live library page fills "with" from this when an item goes out (the e2e test
    # watches a real checkout); strangers get nothing, unknown items a 404.
    async with httpx.AsyncClient(base_url=str(central.admin.base_url)) as stranger:
        refused = await stranger.get("/staff/items/SAW-01/line")
        assert refused.status_code == 401
        assert "Saw" not in refused.text
    async with staff_client(central, "vera@example.org", "Vera", "volunteer") as vera:
        line = await vera.get("/staff/items/SAW-01/line")
        assert line.status_code == 200
        assert line.json() == {"state": "available", "member_id": None, "due": ""}
        assert (await vera.get("/staff/items/NOPE-01/line")).status_code == 404
