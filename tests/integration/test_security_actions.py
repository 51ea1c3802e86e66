"""Security actions on a real central and broker: invalidate passes, block kiosks, rotate keys."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker import topics
from broker.local import LocalBroker
from broker.messages import Reason, SecurityAlert
from central.security import ALERT_AUTO_BLOCK
from testkit.probe import Probe
from tests.conftest import RunningCentral, backend_settings, seed_library, start_central
from tests.integration.test_admin_cli import Outcome, run_cli, url_of
from tests.integration.test_metrics import scrape
from tests.support.scans import ask, scan


@pytest.fixture(autouse=True)
def _no_ambient_admin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CS_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("CS_ADMIN_URL", raising=False)


async def cs_admin(
    capsys: pytest.CaptureFixture[str], central: RunningCentral, *argv: str
) -> Outcome:
    token_file = central.settings.data_dir / "admin.token"
    base = ["--url", url_of(central), "--token-file", str(token_file)]
    return await run_cli(capsys, [*base, *argv])


async def new_pass(central: RunningCentral, member: str = "M-1002") -> str:
    response = await central.admin.post(f"/members/{member}/passes", json={})
    response.raise_for_status()
    return str(response.json()["code"])


async def audit(central: RunningCentral, action: str) -> list[dict[str, Any]]:
    rows = (await central.admin.get("/audit", params={"limit": 10_000})).json()
    return [row for row in rows if row["action"] == action]


async def test_invalidate_all_refuses_every_outstanding_pass_at_the_kiosk(
    central: RunningCentral, probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed_library(central.admin)
    probe.subscribe(topics.verdict("KIOSK-A1"))
    used = await new_pass(central, "M-1001")
    assert (await ask(probe, scan("KIOSK-A1", used))).reason is Reason.SESSION_OPENED
    outstanding = [await new_pass(central) for _ in range(3)]

    response = await central.admin.post("/passes/invalidate", json={"reason": "phone leak"})
    assert (response.status_code, response.json()) == (200, {"invalidated": 3})
    for code in outstanding:
        assert (await ask(probe, scan("KIOSK-A1", code))).reason is Reason.REVOKED
    assert (await ask(probe, scan("KIOSK-A1", used))).reason is Reason.ALREADY_USED

    again = await cs_admin(capsys, central, "--json", "passes", "invalidate", "--reason", "drill")
    assert (again.code, again.json()) == (0, {"invalidated": 0})
    rows = await audit(central, "pass.invalidate_all")
    assert [(r["actor"], r["reason"], r["detail"]) for r in rows] == [
        ("admin:api", "phone leak", {"count": 3}),
        ("admin:api", "drill", {"count": 0}),
    ]
    # A reason is required: the audit log must say why.
    refused = await central.admin.post("/passes/invalidate", json={})
    assert refused.status_code == 422
    fresh = await new_pass(central)
    assert (await ask(probe, scan("KIOSK-A1", fresh))).reason is Reason.SESSION_OPENED


async def test_an_admin_blocks_and_unblocks_a_kiosk_from_the_cli(
    central: RunningCentral, probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed_library(central.admin)
    probe.subscribe(topics.verdict("KIOSK-A1"))
    blocked = await cs_admin(
        capsys, central, "kiosk", "block", "KIOSK-A1", "--for", "30", "--reason", "stolen"
    )
    assert blocked.code == 0, blocked.err
    assert blocked.out.splitlines()[0].split() == ["KIOSK_ID", "BLOCKED_UNTIL"]
    assert (await ask(probe, scan("KIOSK-A1", await new_pass(central)))).reason is (
        Reason.KIOSK_BLOCKED
    )
    unblocked = await cs_admin(capsys, central, "--json", "kiosk", "unblock", "KIOSK-A1")
    assert (unblocked.code, unblocked.json()["blocked_until"]) == (0, None)
    assert (await ask(probe, scan("KIOSK-A1", await new_pass(central)))).reason is (
        Reason.SESSION_OPENED
    )

    unknown = await cs_admin(capsys, central, "kiosk", "block", "KIOSK-ZZ", "--reason", "x")
    assert (unknown.code, "no kiosk KIOSK-ZZ" in unknown.err) == (1, True)
    zero = await cs_admin(
        capsys, central, "kiosk", "block", "KIOSK-A1", "--for", "0", "--reason", "x"
    )
    assert zero.code == 2
    no_reason = await asyncio.to_thread(_usage_exit, ["kiosk", "block", "KIOSK-A1"])
    assert no_reason == 2
    rows = await audit(central, "kiosk.block") + await audit(central, "kiosk.unblock")
    assert [(r["action"], r["kiosk_id"], r["reason"]) for r in rows] == [
        ("kiosk.block", "KIOSK-A1", "stolen"),
        ("kiosk.unblock", "KIOSK-A1", "unblocked by admin"),
    ]


def _usage_exit(argv: list[str]) -> int:
    from provisioning.cli import main

    try:
        return main(argv)
    except SystemExit as exc:  # argparse refuses missing arguments by exiting 2
        return int(exc.code or 0)


@pytest.fixture(params=["sqlite", "postgres"])
async def guarded_central(
    request: pytest.FixtureRequest, tmp_path: Path, broker: LocalBroker
) -> AsyncIterator[RunningCentral]:
    """A central with its abuse defences on, small enough to trip in a test."""
    async with (
        backend_settings(
            request.param,
            tmp_path,
            broker,
            rate_kiosk_per_min=1,
            rate_kiosk_burst=6,
            rate_member_per_min=0,
            block_after_failures=4,
            block_window_s=60,
            block_first_s=600,
        ) as settings,
        start_central(settings) as running,
    ):
        yield running


async def test_forgeries_from_one_kiosk_block_it_and_alert_operators(
    guarded_central: RunningCentral, probe: Probe
) -> None:
    central = guarded_central
    await seed_library(central.admin)
    probe.subscribe(topics.verdict("KIOSK-A1"))
    probe.subscribe(topics.ALERTS)
    drill = (await central.admin.get("/items/DRILL-01/label")).json()["code"]
    forged = drill[:-1] + ("A" if drill[-1] != "A" else "B")
    reasons = [(await ask(probe, scan("KIOSK-A1", forged))).reason for _ in range(4)]
    assert reasons == [Reason.BAD_SIGNATURE] * 4
    received = await asyncio.to_thread(probe.next, 10.0, topic_suffix="/alerts")
    alert = SecurityAlert.model_validate_json(received.payload)
    assert (alert.kind, alert.kiosk_id) == (ALERT_AUTO_BLOCK, "KIOSK-A1")
    rake = (await central.admin.get("/items/RAKE-01/label")).json()["code"]
    assert (await ask(probe, scan("KIOSK-A1", rake))).reason is Reason.KIOSK_BLOCKED

    metrics = await scrape(central.admin)
    assert metrics[("qr_security_alerts_total", (("kind", ALERT_AUTO_BLOCK),))] == 1
    rows = await audit(central, "security.alert")
    assert [(r["actor"], r["reason"], r["kiosk_id"]) for r in rows] == [
        ("system", ALERT_AUTO_BLOCK, "KIOSK-A1")
    ]
    unblocked = await central.admin.post("/kiosks/KIOSK-A1/unblock", json={"reason": "checked"})
    assert unblocked.status_code == 200
    assert (await ask(probe, scan("KIOSK-A1", rake))).reason is Reason.NO_SESSION


async def test_a_flooding_kiosk_is_rate_limited_and_its_neighbour_is_not(
    guarded_central: RunningCentral, probe: Probe
) -> None:
    central = guarded_central
    await seed_library(central.admin)
    probe.subscribe(topics.VERDICT_FILTER)
    rake = (await central.admin.get("/items/RAKE-01/label")).json()["code"]
    reasons = [(await ask(probe, scan("KIOSK-A1", rake))).reason for _ in range(8)]
    assert reasons == [Reason.NO_SESSION] * 6 + [Reason.RATE_LIMITED] * 2
    assert (await ask(probe, scan("KIOSK-B1", rake))).reason is Reason.NO_SESSION


@pytest.mark.parametrize("grace_s", [3600, 0])
async def test_key_rotation_keeps_old_codes_for_the_grace_and_never_shows_a_key(
    grace_s: int,
    tmp_path: Path,
    broker: LocalBroker,
    probe: Probe,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []  # everything central said to anyone during the test
    async with (
        backend_settings("sqlite", tmp_path, broker, key_grace_s=grace_s) as settings,
        start_central(settings) as central,
    ):
        await seed_library(central.admin)
        probe.subscribe(topics.VERDICT_FILTER)
        old_label = (await central.admin.get("/items/RAKE-01/label")).json()["code"]
        rotated = await cs_admin(capsys, central, "--json", "keys", "rotate")
        assert rotated.code == 0, rotated.err
        assert (rotated.json()["active"], rotated.json()["previous"]) == ("K2", "K1")
        listed = await cs_admin(capsys, central, "keys", "list")
        seen += [rotated.out, listed.out, listed.err]
        assert [line.split()[:2] for line in listed.out.splitlines()[1:]] == [
            ["K1", "False"],
            ["K2", "True"],
        ]
        new_label = (await central.admin.get("/items/RAKE-01/label")).json()["code"]
        assert (old_label.split(".")[2], new_label.split(".")[2]) == ("K1", "K2")

        old = await ask(probe, scan("KIOSK-B1", old_label))
        new = await ask(probe, scan("KIOSK-B1", new_label))
        expected = Reason.NO_SESSION if grace_s else Reason.BAD_SIGNATURE
        assert (old.reason, new.reason) == (expected, Reason.NO_SESSION)
        seen.append(json.dumps((await central.admin.get("/audit", params={"limit": 1000})).json()))
        seen.append((await central.admin.get("/metrics")).text)
        seen.append(old.model_dump_json() + new.model_dump_json())
        keys_path = settings.keys_path
        assert stat.S_IMODE(keys_path.stat().st_mode) == 0o600
        material = json.loads(keys_path.read_text())["keys"]
    seen.append(caplog.text)
    # Mosquitto's log, and any service log the run wrote.
    seen += [path.read_bytes().decode(errors="replace") for path in tmp_path.rglob("*.log")]  # noqa: ASYNC240 - central has stopped
    assert set(material) == {"K1", "K2"}
    haystack = "\n".join(seen)
    for encoded in material.values():
        raw = base64.b64decode(encoded)
        for form in (encoded, raw.hex(), base64.b32encode(raw).decode(), repr(raw)):
            assert form not in haystack


# The shipped defaults, defences and breaker on (conftest turns them off for load), with the
# breaker looking often so a test need not wait five seconds for it.
DEFENCES_ON: dict[str, Any] = {
    "rate_kiosk_per_min": 60,
    "rate_kiosk_burst": 20,
    "rate_member_per_min": 20,
    "rate_member_burst": 10,
    "block_after_failures": 20,
    "breaker_min_scans": 50,
    "breaker_every_s": 0.1,
}


@pytest.fixture
async def defended_central(tmp_path: Path, broker: LocalBroker) -> AsyncIterator[RunningCentral]:
    """A central with the abuse defences and the circuit breaker as shipped."""
    async with (
        backend_settings("sqlite", tmp_path, broker, **DEFENCES_ON) as settings,
        start_central(settings) as running,
    ):
        yield running


async def test_fifty_forged_codes_at_one_kiosk_leave_checkout_on_everywhere(
    defended_central: RunningCentral, probe: Probe
) -> None:
    central = defended_central
    await seed_library(central.admin)
    probe.subscribe(topics.VERDICT_FILTER)
    drill = (await central.admin.get("/items/DRILL-01/label")).json()["code"]
    sheet = [drill[:-4] + f"{n:04d}" for n in range(50)]  # a printed sheet of forgeries
    reasons = [(await ask(probe, scan("KIOSK-A1", code))).reason for code in sheet]
    # Throttled where it comes from: twenty refusals, then that kiosk cools down.
    assert reasons == [Reason.BAD_SIGNATURE] * 20 + [Reason.KIOSK_BLOCKED] * 30
    # Staff hear of it: one alert (audit row and metric; tested above on cs/v1/alerts).
    rows = await audit(central, "security.alert")
    assert [(r["reason"], r["kiosk_id"]) for r in rows] == [(ALERT_AUTO_BLOCK, "KIOSK-A1")]
    metrics = await scrape(central.admin)
    assert metrics[("qr_security_alerts_total", (("kind", ALERT_AUTO_BLOCK),))] == 1
    await asyncio.sleep(1.0)  # ten looks of the breaker
    breaker = (await central.admin.get("/rollout/breaker")).json()
    assert (breaker["tripped"], breaker["scans"], breaker["errors"]) == (False, 50, 20)
    # Every other kiosk checks out as before.
    opened = await ask(probe, scan("KIOSK-B1", await new_pass(central, "M-1002")))
    assert opened.reason is Reason.SESSION_OPENED
    # At the forger's kiosk the cool-down is seconds, not a quarter of an hour, and the
    # next member with a pass lifts it at once.
    blocked = (await central.admin.get("/kiosks/KIOSK-A1")).json()["blocked_until"]
    assert datetime.fromisoformat(blocked) - datetime.now(UTC) < timedelta(seconds=6)
    assert (await ask(probe, scan("KIOSK-A1", await new_pass(central, "M-1001")))).reason is (
        Reason.SESSION_OPENED
    )
    assert (await ask(probe, scan("KIOSK-A1", drill))).reason is Reason.CHECKED_OUT
    actions = [(r["actor"], r["action"]) for r in await audit(central, "kiosk.unblock")]
    assert actions == [("system", "kiosk.unblock")]


async def test_replaying_a_used_pass_never_rate_limits_its_member(
    defended_central: RunningCentral, probe: Probe
) -> None:
    central = defended_central
    await seed_library(central.admin)
    probe.subscribe(topics.VERDICT_FILTER)
    ada = await new_pass(central, "M-1001")
    assert (await ask(probe, scan("KIOSK-A1", ada))).reason is Reason.SESSION_OPENED
    # Someone photographed Ada's pass and shows it at another kiosk, again and again.
    replays = [(await ask(probe, scan("KIOSK-B1", ada))).reason for _ in range(15)]
    assert replays == [Reason.ALREADY_USED] * 15
    drill = (await central.admin.get("/items/DRILL-01/label")).json()["code"]
    saw = (await central.admin.get("/items/SAW-01/label")).json()["code"]
    assert (await ask(probe, scan("KIOSK-A1", drill))).reason is Reason.CHECKED_OUT
    assert (await ask(probe, scan("KIOSK-A1", saw))).reason is Reason.CHECKED_OUT
