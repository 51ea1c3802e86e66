"""The rollout flag, kill switch and circuit breaker through a real central, broker and kiosk."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from broker import topics
from broker.local import LocalBroker
from broker.messages import KioskConfig, Reason, SecurityAlert
from kiosk.feedback import Signal
from provisioning.errors import EXIT_REFUSED, EXIT_USAGE
from testkit.probe import Probe
from tests.conftest import (
    RunningCentral,
    backend_settings,
    central_settings,
    seed_library,
    start_central,
)
from tests.integration.test_admin_cli import Cli, Outcome, run_cli, token_file_of, url_of
from tests.support.kiosks import running_kiosk, until
from tests.support.scans import ask, scan


async def next_config(probe: Probe, kiosk_id: str) -> KioskConfig:
    received = await asyncio.to_thread(probe.next, 10.0, topic_suffix=f"{kiosk_id}/config")
    return KioskConfig.model_validate_json(received.payload)


async def a_pass(admin: httpx.AsyncClient, member_id: str = "M-1001") -> str:
    return str((await admin.post(f"/members/{member_id}/passes", json={})).json()["code"])


async def a_label(admin: httpx.AsyncClient, item_id: str) -> str:
    return str((await admin.get(f"/items/{item_id}/label")).json()["code"])


async def test_cs_admin_turns_checkout_off_and_on_and_kiosks_hear_it(
    central: RunningCentral, probe: Probe, cli: Cli
) -> None:
    await seed_library(central.admin)
    drill = await a_label(central.admin, "DRILL-01")
    probe.subscribe(topics.verdict("KIOSK-A1"))
    probe.subscribe(topics.config("KIOSK-A1"))
    assert (await next_config(probe, "KIOSK-A1")).checkout_enabled  # retained, from enrolment

    shown = await cli("flag", "show")
    assert shown.code == 0
    assert shown.out.splitlines()[1].split()[0] == "on"

    # A checkout before the switch, to return while checkout is off.
    assert (await ask(probe, scan("KIOSK-A1", await a_pass(central.admin)))).reason is (
        Reason.SESSION_OPENED
    )
    assert (await ask(probe, scan("KIOSK-A1", drill))).reason is Reason.CHECKED_OUT

    off = await cli("flag", "set", "off", "--reason", "stocktake", "--actor", "ops")
    assert off.code == 0, off.err
    assert "kiosk configs republished: 2" in off.out
    assert not (await next_config(probe, "KIOSK-A1")).checkout_enabled
    refused = await ask(probe, scan("KIOSK-A1", await a_pass(central.admin, "M-1002")))
    assert refused.reason is Reason.FEATURE_DISABLED
    # Returns work whatever the flag says (a new pass would end the session; this one
    # was refused, so the session is still open: close it, then return).
    assert (await ask(probe, scan("KIOSK-A1", drill))).reason is Reason.FEATURE_DISABLED
    assert (await cli("flag", "set", "on", "--reason", "stocktake done")).code == 0
    await central.admin.post("/rollout/kill-switch", json={"reason": "again", "actor": "ops"})
    grace = await ask(probe, scan("KIOSK-A1", await a_pass(central.admin, "M-1002")))
    assert grace.reason is Reason.FEATURE_DISABLED

    pilot = await cli(
        "--json", "flag", "set", "allow-list", "--members", "M-1002", "--reason", "staff pilot"
    )
    assert pilot.code == 0, pilot.err
    assert pilot.json()["members"] == ["M-1002"]
    assert (await next_config(probe, "KIOSK-A1")).checkout_enabled
    opened = await ask(probe, scan("KIOSK-A1", await a_pass(central.admin, "M-1002")))
    assert opened.reason is Reason.SESSION_OPENED

    audit = (await cli("--json", "audit", "--limit", "100")).json()
    changes = [(r["action"], r["actor"], r["reason"]) for r in audit if "rollout" in r["action"]]
    assert changes == [
        ("rollout.flag_set", "admin:ops", "stocktake"),
        ("rollout.flag_set", f"admin:{changes[1][1].split(':')[1]}", "stocktake done"),
        ("rollout.kill_switch", "admin:ops", "again"),
        ("rollout.flag_set", changes[1][1], "staff pilot"),
    ]


async def test_cs_admin_refuses_flag_settings_that_do_not_fit_the_mode(cli: Cli) -> None:
    for argv in (
        ("flag", "set", "percentage", "--reason", "pilot"),
        ("flag", "set", "on", "--percent", "5", "--reason", "pilot"),
        ("flag", "set", "off", "--members", "M-1", "--reason", "pilot"),
        ("flag", "set", "allow-list", "--reason", "pilot"),
        ("flag", "set", "percentage", "--percent", "101", "--reason", "pilot"),
        ("flag", "set", "on", "--reason", "pilot", "--actor", "bob smith"),
    ):
        outcome = await cli(*argv)
        assert outcome.code == EXIT_USAGE, argv
        assert outcome.err.startswith("bad arguments:"), outcome.err
    # Central checks too: ids must be ids.
    bad = await cli("flag", "set", "allow-list", "--members", "lower-case", "--reason", "pilot")
    assert bad.code == EXIT_REFUSED
    assert "is not an id" in bad.err
    assert (await cli("--json", "flag", "show")).json()["mode"] == "on"


async def test_kill_switch_turns_checkout_off_and_invalidates_every_active_pass(
    central: RunningCentral, cli: Cli, probe: Probe
) -> None:
    await seed_library(central.admin)
    outstanding = (await central.admin.post("/members/M-1001/passes", json={})).json()["code"]
    probe.subscribe(topics.verdict("KIOSK-A1"))

    killed = await cli("--json", "kill-switch", "--reason", "stolen passes", "--actor", "ops")
    assert killed.code == 0, killed.err
    assert killed.json()["flag"]["mode"] == "off"
    assert killed.json()["invalidated_passes"] is None

    both = await cli("kill-switch", "--reason", "stolen passes", "--invalidate-passes")
    assert both.code == 0, both.err
    assert "passes invalidated: 1" in both.out
    assert (await cli("--json", "flag", "show")).json()["mode"] == "off"

    # Even with checkout back on, the pass that was out when the switch was pulled is dead.
    assert (await cli("flag", "set", "on", "--reason", "all clear")).code == 0
    assert (await ask(probe, scan("KIOSK-A1", outstanding))).reason is Reason.REVOKED


async def test_breaker_trips_on_forged_codes_and_stays_off_until_reset(
    broker: LocalBroker, tmp_path: Path, probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = central_settings(tmp_path, broker, breaker_every_s=0.1, breaker_min_scans=10)
    async with start_central(settings) as central:

        async def cli(*argv: str) -> Outcome:
            base = ["--url", url_of(central), "--token-file", str(token_file_of(central))]
            return await run_cli(capsys, [*base, *argv])

        await seed_library(central.admin)
        # Forgeries everywhere at once (a key ring out of step looks the same): three kiosks,
        # the fewest whose errors can trip it (one kiosk's are contained at that kiosk).
        third = {"kiosk_id": "KIOSK-C1", "shelf_id": "SHELF-A"}
        (await central.admin.post("/kiosks", json=third)).raise_for_status()
        kiosks = ("KIOSK-A1", "KIOSK-B1", "KIOSK-C1")
        probe.subscribe(topics.VERDICT_FILTER)
        probe.subscribe(topics.ALERTS)
        forged = (await a_label(central.admin, "DRILL-01"))[:-4] + "AAAA"
        for n in range(9):
            refused = await ask(probe, scan(kiosks[n % 3], forged))
            assert refused.reason is Reason.BAD_SIGNATURE
        await asyncio.sleep(0.5)
        assert (await cli("--json", "breaker", "show")).json()["tripped"] is False, "9 < 10"
        await ask(probe, scan("KIOSK-A1", forged))

        received = await asyncio.to_thread(probe.next, 10.0, topic_suffix="alerts")
        alert = SecurityAlert.model_validate_json(received.payload)
        assert alert.kind == "breaker.tripped"
        assert "error rate 100.0%" in alert.detail
        refused = await ask(probe, scan("KIOSK-A1", await a_pass(central.admin)))
        assert refused.reason is Reason.FEATURE_DISABLED
        metrics = (await central.admin.get("/metrics")).text
        assert "qr_breaker_tripped 1.0" in metrics
        assert 'qr_rollout_mode{mode="off"} 1.0' in metrics

        shown = await cli("breaker", "show")
        assert shown.code == 0
        assert "tripped at" in shown.out
        on = await cli("flag", "set", "on", "--reason", "it's fine")
        assert on.code == EXIT_REFUSED
        assert "reset it first" in on.err
        reset = await cli("breaker", "reset", "--reason", "forgeries traced to a test rig")
        assert reset.code == 0, reset.err
        assert "checkout is still off" in reset.out
        assert (await cli("breaker", "reset", "--reason", "again")).code == EXIT_REFUSED
        assert (await cli("flag", "set", "on", "--reason", "resume")).code == 0
        await asyncio.sleep(0.5)  # the breaker looks again: the old errors predate the reset
        opened = await ask(probe, scan("KIOSK-A1", await a_pass(central.admin)))
        assert opened.reason is Reason.SESSION_OPENED
        audit = (await central.admin.get("/audit", params={"limit": 200})).json()
        breaker_rows = [r for r in audit if r["action"].startswith("breaker.")]
        assert [r["action"] for r in breaker_rows if r["reason"] != "REFUSED"] == [
            "breaker.tripped",
            "breaker.reset",
        ]
        # The refused attempts (turning checkout on while tripped, resetting twice) are on
        # the record as well, written like every refused admin write.
        attempts = [
            (r["action"], r["detail"]["message"]) for r in audit if r["reason"] == "REFUSED"
        ]
        assert [action for action, _ in attempts] == ["rollout.flag_set", "breaker.reset"]
        assert "reset it first" in attempts[0][1]


async def test_kiosk_idle_light_shows_checkout_off_and_returns_still_work(
    central: RunningCentral, broker: LocalBroker, tmp_path: Path
) -> None:
    admin = central.admin
    await seed_library(admin)
    drill = await a_label(admin, "DRILL-01")
    async with running_kiosk("KIOSK-A1", broker, tmp_path / "k", debounce_s=0.4) as k:
        await until(lambda: k.kiosk.config is not None)
        await k.show(await a_pass(admin), Signal.SESSION_OPENED)
        await k.show(drill, Signal.CHECKED_OUT)
        mark = len(k.kiosk.player.history)
        k.button.press()
        await k.until_signal(Signal.SESSION_CLOSED, after=mark)
        await k.until_signal(Signal.IDLE, after=mark)
        assert k.pin("blue")
        assert not k.pin("red")

        off = await admin.put(
            "/rollout/flag", json={"mode": "off", "reason": "stocktake", "actor": "ops"}
        )
        assert off.status_code == 200, off.text
        # Magenta (red and blue): returns only.
        await k.until_signal(Signal.CHECKOUT_OFF, after=mark)
        await until(lambda: k.pin("red") and k.pin("blue") and not k.pin("green"))
        await k.step_away()
        await k.show(await a_pass(admin, "M-1002"), Signal.REFUSED_DISABLED)
        await k.step_away()
        await k.show(drill, Signal.RETURNED)

        mark = len(k.kiosk.player.history)
        on = await admin.put("/rollout/flag", json={"mode": "on", "reason": "done"})
        assert on.status_code == 200, on.text
        await k.until_signal(Signal.IDLE, after=mark)
        await until(lambda: k.pin("blue") and not k.pin("red"))


@pytest.fixture
async def two_centrals(broker: LocalBroker, tmp_path: Path) -> AsyncIterator[list[RunningCentral]]:
    async with backend_settings("postgres", tmp_path / "a", broker) as first:
        second = central_settings(
            tmp_path / "b", broker, database="postgres", postgres_dsn=first.postgres_dsn
        )
        second.data_dir.mkdir(parents=True)
        async with start_central(first) as a:
            (second.data_dir / "admin.token").write_text(
                (first.data_dir / "admin.token").read_text()
            )
            (second.data_dir / "keys.json").write_text((first.data_dir / "keys.json").read_text())
            async with start_central(second) as b:
                yield [a, b]


async def test_a_flag_change_on_one_central_holds_on_the_other_at_once(
    two_centrals: list[RunningCentral], probe: Probe
) -> None:
    a, b = two_centrals
    await seed_library(a.admin)
    probe.subscribe(topics.verdict("KIOSK-A1"))
    changed = await a.admin.put("/rollout/flag", json={"mode": "off", "reason": "incident"})
    assert changed.status_code == 200, changed.text
    started = time.monotonic()
    assert (await b.admin.get("/rollout/flag")).json()["mode"] == "off"
    # The shared subscription hands these to both instances; every one is refused.
    passes = [await a_pass(a.admin, m) for m in ("M-1001", "M-1002") for _ in range(4)]
    verdicts = [await ask(probe, scan("KIOSK-A1", code)) for code in passes]
    assert {v.reason for v in verdicts} == {Reason.FEATURE_DISABLED}
    assert time.monotonic() - started < 10
    decided = [(await c.admin.get("/stats")).json()["counts"] for c in (a, b)]
    assert sum(c.get("FEATURE_DISABLED", 0) for c in decided) == len(passes)
