"""Configure, watch and identify kiosks: a real kiosk, broker and central, and ``cs-admin``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker import topics
from broker.local import LocalBroker
from broker.messages import KioskState, KioskStatus, encode
from kiosk.feedback import Signal
from kiosk.walkup import Mode
from testkit.probe import Probe
from tests.conftest import RunningCentral, seed_library
from tests.integration.test_admin_cli import parse_table, run_cli, token_file_of, url_of
from tests.integration.test_metrics import scrape
from tests.support.kiosks import running_kiosk, until


async def kiosk_view(admin: httpx.AsyncClient, kiosk_id: str) -> dict[str, Any]:
    response = await admin.get(f"/kiosks/{kiosk_id}")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def until_view(
    admin: httpx.AsyncClient,
    kiosk_id: str,
    holds: Callable[[dict[str, Any]], bool],
    within: float = 10,
) -> dict[str, Any]:
    """Poll ``GET /kiosks/{id}`` until ``holds`` is true of it; the view."""
    async with asyncio.timeout(within):
        while True:
            view = await kiosk_view(admin, kiosk_id)
            if holds(view):
                return view
            await asyncio.sleep(0.05)


async def test_a_config_change_reaches_the_running_kiosk_without_a_restart(
    central: RunningCentral, broker: LocalBroker, tmp_path: Path
) -> None:
    admin = central.admin
    await seed_library(admin)
    pass_code = (await admin.post("/members/M-1001/passes", json={})).json()["code"]
    rake = (await admin.get("/items/RAKE-01/label")).json()["code"]
    async with running_kiosk(
        "KIOSK-A1", broker, tmp_path / "k", debounce_s=0.4, status_every_s=0.5
    ) as k:
        before = await until_view(admin, "KIOSK-A1", lambda v: v["running_config_version"] == 1)
        assert (before["online"], before["config_version"]) == (True, 1)
        await until(lambda: "DRILL-01" in k.kiosk.availability)
        first_camera = k.kiosk.scans.camera

        changed = await admin.patch(
            "/kiosks/KIOSK-A1/config",
            json={
                "shelf_id": "SHELF-B",
                "session_timeout_s": 1.5,
                "camera": {"fps": 15},
                "feedback": {"sound": "refusals"},
            },
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["config_version"] == 2

        # The kiosk says it runs version 2, and its measured frame rate follows the camera.
        after = await until_view(
            admin,
            "KIOSK-A1",
            lambda v: v["running_config_version"] == 2 and 10 <= (v["camera_fps"] or 0) <= 17,
        )
        assert after["config_problem"] is None
        assert {k: v for k, v in after["config"]["camera"].items() if v} == {"fps": 15.0}
        assert after["decode_ms"] is not None
        # Moved to the garden shelf: it hears that shelf's items and forgets the tools.
        await until(lambda: "RAKE-01" in k.kiosk.availability)
        assert "DRILL-01" not in k.kiosk.availability
        added = {"item_id": "DRILL-02", "shelf_id": "SHELF-A", "name": "Second drill"}
        (await admin.post("/items", json=added)).raise_for_status()
        spade = {"item_id": "SPADE-01", "shelf_id": "SHELF-B", "name": "Spade"}
        (await admin.post("/items", json=spade)).raise_for_status()
        await until(lambda: "SPADE-01" in k.kiosk.availability)
        assert "DRILL-02" not in k.kiosk.availability

        # The camera was reopened with the new rate, and the new one is the one scanned.
        assert k.kiosk.scans.camera is not first_camera
        await k.show(rake, Signal.REFUSED_NO_SESSION)  # a label at idle, nothing to return

        # Sound only for refusals: the session opens in silence...
        await k.step_away()
        await k.until_signal(Signal.IDLE, after=len(k.kiosk.player.history) - 1)
        await asyncio.sleep(0.7)  # the refusal's buzz (0.6 s) is over
        buzzer = k.pins.pin(k.kiosk.reconfigure.pins.buzzer)
        buzzer.clear_states()
        await k.show(pass_code, Signal.SESSION_OPENED)
        assert k.mode() is Mode.SESSION
        # ...and ends by itself after 1.5 s idle, not the 60 s it had before.
        await until(lambda: k.mode() is Mode.IDLE, within=4)
        assert not any(state.state for state in buzzer.states)

    audit = (await admin.get("/audit", params={"limit": 50})).json()
    (row,) = [r for r in audit if r["action"] == "kiosk.configure"]
    assert row["kiosk_id"] == "KIOSK-A1"
    assert row["detail"]["config_version"] == 2
    assert row["detail"]["changes"] == {
        "camera.fps": [None, 15.0],
        "feedback.sound": [None, "refusals"],
        "session_timeout_s": [60.0, 1.5],
        "shelf_id": ["SHELF-A", "SHELF-B"],
    }


async def test_identify_flashes_white_on_the_pins_central_assigned(
    central: RunningCentral, broker: LocalBroker, tmp_path: Path
) -> None:
    admin = central.admin
    await seed_library(admin)
    async with running_kiosk("KIOSK-A1", broker, tmp_path / "k") as k:
        await until_view(admin, "KIOSK-A1", lambda v: v["running_config_version"] == 1)
        new_pins = {"red": 5, "green": 6, "blue": 13, "buzzer": 19, "button": 26}
        changed = await admin.patch("/kiosks/KIOSK-A1/config", json={"pins": new_pins})
        assert changed.status_code == 200, changed.text
        await until_view(admin, "KIOSK-A1", lambda v: v["running_config_version"] == 2)
        assert k.kiosk.reconfigure.problem is None

        mark = len(k.kiosk.player.history)
        sent = await admin.post("/kiosks/KIOSK-A1/identify")
        assert sent.status_code == 202, sent.text
        assert sent.json() == {"kiosk_id": "KIOSK-A1", "command": "identify", "online": True}
        await k.until_signal(Signal.IDENTIFY, after=mark)
        # White and a beep together, on the new pins; the old ones stay dark.
        await until(lambda: all(k.pins.pin(n).state for n in (5, 6, 13, 19)), within=3)
        assert not any(k.pins.pin(n).state for n in (17, 27, 22, 23))

        # The "done" button works on its new pin too: a member's session ends with it.
        pass_code = (await admin.post("/members/M-1001/passes", json={})).json()["code"]
        await k.show(pass_code, Signal.SESSION_OPENED)
        mark = len(k.kiosk.player.history)
        k.pins.pin(26).drive_low()
        await k.until_signal(Signal.SESSION_CLOSED, after=mark)

        missing = await admin.post("/kiosks/KIOSK-Z9/identify")
        assert missing.status_code == 404
        assert "no kiosk KIOSK-Z9" in missing.json()["detail"]
    audit = (await admin.get("/audit", params={"limit": 50})).json()
    assert [r["kiosk_id"] for r in audit if r["action"] == "kiosk.identify"] == ["KIOSK-A1"]


async def test_bad_config_changes_are_refused_and_change_nothing(
    central: RunningCentral,
) -> None:
    admin = central.admin
    await seed_library(admin)
    ok = await admin.patch("/kiosks/KIOSK-A1/config", json={"pins": {"red": 5}})
    assert ok.status_code == 200, ok.text
    cases = [
        ({"pins": {"green": 5}}, 422, "two devices on one pin"),  # clashes with red=5
        ({"shelf_id": "SHELF-Z"}, 409, "shelf SHELF-Z does not exist"),
        ({}, 422, "nothing to change"),
        ({"shelf_id": None}, 422, "cannot be cleared"),
        ({"camera": {"fps": 0}}, 422, "greater than 0"),
        ({"volume": 3}, 422, "Extra inputs"),
    ]
    for body, status, why in cases:
        refused = await admin.patch("/kiosks/KIOSK-A1/config", json=body)
        assert refused.status_code == status, (body, refused.text)
        assert why in refused.text, (body, refused.text)
    missing = await admin.patch("/kiosks/KIOSK-Z9/config", json={"session_timeout_s": 5})
    assert missing.status_code == 404
    view = await kiosk_view(admin, "KIOSK-A1")
    assert view["config_version"] == 2
    assert {k: v for k, v in view["config"]["pins"].items() if v} == {"red": 5}
    assert view["shelf_id"] == "SHELF-A"

    # Reset: null gives the setting back to the kiosk's own.
    reset = await admin.patch("/kiosks/KIOSK-A1/config", json={"pins": {"red": None}})
    assert reset.status_code == 200, reset.text
    assert "pins" not in reset.json()
    assert (await kiosk_view(admin, "KIOSK-A1"))["config_version"] == 3


async def test_per_kiosk_metrics_follow_enrolled_online_kiosks_only(
    central: RunningCentral, broker: LocalBroker, probe: Probe, tmp_path: Path
) -> None:
    admin = central.admin
    await seed_library(admin)
    # A kiosk nobody enrolled (a typo, a rogue device) must not grow the series.
    stranger = KioskStatus(
        kiosk_id="KIOSK-Z9",
        state=KioskState.ONLINE,
        software_version="x",
        config_version=1,
        camera_fps=30,
        at=datetime.now(UTC),
    )
    probe.publish(topics.status("KIOSK-Z9"), encode(stranger), retain=True)

    def series(metrics: dict[Any, float], name: str) -> dict[str, float]:
        return {dict(labels)["kiosk"]: v for (n, labels), v in metrics.items() if n == name}

    async with running_kiosk("KIOSK-A1", broker, tmp_path / "k", status_every_s=0.3):
        await until_view(admin, "KIOSK-A1", lambda v: v["online"] and v["camera_fps"] is not None)
        metrics = await scrape(admin)
        assert series(metrics, "qr_kiosk_online") == {"KIOSK-A1": 1, "KIOSK-B1": 0}
        assert set(series(metrics, "qr_kiosk_camera_fps")) == {"KIOSK-A1"}
        assert series(metrics, "qr_kiosk_camera_fps")["KIOSK-A1"] > 5
        assert 0 < series(metrics, "qr_kiosk_decode_median_seconds")["KIOSK-A1"] < 1
        assert series(metrics, "qr_kiosk_outbox_depth") == {"KIOSK-A1": 0}
        assert series(metrics, "qr_kiosk_camera_ok") == {"KIOSK-A1": 1}

    await until_view(admin, "KIOSK-A1", lambda v: v["state"] == "stopped")
    metrics = await scrape(admin)
    # Stopped: still a member of the fleet, but its health figures are gone, not frozen.
    assert series(metrics, "qr_kiosk_online") == {"KIOSK-A1": 0, "KIOSK-B1": 0}
    assert series(metrics, "qr_kiosk_camera_fps") == {}


# --- cs-admin -------------------------------------------------------------------------------


async def test_cs_admin_configures_watches_and_identifies(
    central: RunningCentral,
    broker: LocalBroker,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CS_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("CS_ADMIN_URL", raising=False)
    base = ["--url", url_of(central), "--token-file", str(token_file_of(central))]

    async def cli(*argv: str) -> Any:
        return await run_cli(capsys, [*base, *argv])

    await seed_library(central.admin)
    async with running_kiosk("KIOSK-A1", broker, tmp_path / "k", status_every_s=0.3) as k:
        await until_view(central.admin, "KIOSK-A1", lambda v: v["camera_fps"] is not None)

        configured = await cli(
            "kiosk",
            "config",
            "KIOSK-A1",
            "--session-timeout",
            "90",
            "--camera-size",
            "800x600",
            "--pins",
            "buzzer=12",
            "--sound",
            "off",
        )
        assert configured.code == 0, configured.err
        _, rows = parse_table(configured.out)
        settings = {r["FIELD"]: r["VALUE"] for r in rows}
        assert settings == {
            "shelf_id": "SHELF-A",
            "session_timeout_s": "90.0",
            "config_version": "2",
            "pins.buzzer": "12",
            "camera.size": "800x600",
            "feedback.sound": "off",
        }
        # A reopened camera starts a new record: wait for the next heartbeat to carry it.
        await until_view(
            central.admin,
            "KIOSK-A1",
            lambda v: v["running_config_version"] == 2 and v["camera_fps"] is not None,
        )
        assert k.camera.blank.shape == (600, 800)  # the scene camera reopened at 800x600
        assert k.kiosk.reconfigure.pins.buzzer == 12

        table = await cli("kiosks")
        assert table.code == 0, table.err
        names, listed = parse_table(table.out)
        assert names == [
            "KIOSK_ID",
            "SHELF_ID",
            "STATE",
            "LAST_SEEN",
            "SOFTWARE",
            "UPDATE",
            "CONFIG",
            "RUNNING",
            "OUTBOX",
            "CAMERA",
            "FPS",
            "DECODE_MS",
            "BLOCKED",
            "RETIRED",
        ]
        by_id = {r["KIOSK_ID"]: r for r in listed}
        a1 = by_id["KIOSK-A1"]
        assert (a1["STATE"], a1["CONFIG"], a1["RUNNING"]) == ("online", "2", "2")
        assert a1["CAMERA"] == "ok"
        assert a1["LAST_SEEN"].startswith(str(datetime.now(UTC).year))
        assert float(a1["FPS"]) > 5
        # Enrolled, never connected: listed and not claimed to be online.
        assert (by_id["KIOSK-B1"]["STATE"], by_id["KIOSK-B1"]["RUNNING"]) == ("unknown", "")

        shown = await cli("kiosk", "show", "KIOSK-A1")
        assert shown.code == 0, shown.err
        _, rows = parse_table(shown.out)
        fields = {r["FIELD"]: r["VALUE"] for r in rows}
        assert (fields["state"], fields["running"], fields["pins.buzzer"]) == ("online", "2", "12")
        as_json = await cli("--json", "kiosk", "show", "KIOSK-A1")
        assert as_json.json()["config"]["feedback"] == {"sound": "off"}
        assert as_json.json()["config"]["pins"]["buzzer"] == 12

        identified = await cli("kiosk", "identify", "KIOSK-A1")
        assert identified.code == 0, identified.err
        assert identified.out.strip() == "KIOSK-A1: identify sent"
        await k.until_signal(Signal.IDENTIFY)
        await until(lambda: k.pin("red") and k.pin("green") and k.pin("blue"), within=3)
        assert not k.pin("buzzer")  # sound off: white flashes, silently

        reset = await cli("kiosk", "config", "KIOSK-A1", "--reset", "pins", "--reset", "camera")
        assert reset.code == 0, reset.err
        await until_view(central.admin, "KIOSK-A1", lambda v: v["running_config_version"] == 3)
        assert k.kiosk.reconfigure.pins.buzzer == 23
        assert k.camera.blank.shape == (480, 640)

    unknown = await cli("kiosk", "identify", "KIOSK-Z9")
    assert unknown.code == 1
    assert "no kiosk KIOSK-Z9" in unknown.err
    unknown = await cli("kiosk", "show", "KIOSK-Z9")
    assert (unknown.code, "no kiosk KIOSK-Z9" in unknown.err) == (1, True)
    nothing = await cli("kiosk", "config", "KIOSK-A1")
    assert nothing.code == 2
    assert "nothing to change" in nothing.err
    clash = await cli("kiosk", "config", "KIOSK-A1", "--pins", "red=5,green=5")
    assert clash.code == 1
    assert "two devices on one pin" in clash.err
    # argparse refuses a malformed option itself, with exit 2 and the reason.
    with pytest.raises(SystemExit) as usage:
        await cli("kiosk", "config", "KIOSK-A1", "--pins", "laser=5")
    assert usage.value.code == 2
    assert "NAME=GPIO" in capsys.readouterr().err


async def test_admins_changing_one_kiosk_at_once_lose_no_change(central: RunningCentral) -> None:
    admin = central.admin
    await seed_library(admin)
    changes = [
        {"pins": {"red": 5}},
        {"pins": {"green": 6}},
        {"pins": {"blue": 13}},
        {"camera": {"fps": 12}},
        {"camera": {"exposure_us": 800}},
        {"feedback": {"sound": "off"}},
        {"session_timeout_s": 45},
        {"camera": {"focus": 2.5}},
    ]

    answers = await asyncio.gather(
        *(admin.patch("/kiosks/KIOSK-A1/config", json=change) for change in changes)
    )

    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sorted(a.json()["config_version"] for a in answers) == list(range(2, 10))
    config = (await kiosk_view(admin, "KIOSK-A1"))["config"]
    assert config["config_version"] == 9
    assert (config["pins"]["red"], config["pins"]["green"], config["pins"]["blue"]) == (5, 6, 13)
    assert (config["camera"]["fps"], config["camera"]["exposure_us"]) == (12, 800)
    assert (config["camera"]["focus"], config["feedback"]["sound"]) == (2.5, "off")
    assert config["session_timeout_s"] == 45
    audit = (await admin.get("/audit", params={"limit": 50})).json()
    assert len([r for r in audit if r["action"] == "kiosk.configure"]) == 8
