"""docs/runbook.md, run: each incident's commands, in order, against a real broker and central.

The runbook is the test script. Its ``sh`` blocks are executed line by line: ``cs-admin``
through the real CLI, ``cs-central`` as a process, ``systemctl`` on this test's central.
A command the harness does not know, or one that fails, fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker import topics
from broker.local import LocalBroker
from broker.messages import Reason
from central.settings import CentralSettings
from central.storage import migrations
from provisioning.cli import main as cs_admin
from testkit.probe import Probe
from testkit.processes import settings_env
from tests.conftest import RunningCentral, central_settings, seed_library, start_central
from tests.support.scans import ask, scan

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "docs" / "runbook.md"


def incidents() -> dict[int, list[str]]:
    """Incident number → the command lines of its ``sh`` blocks, in order."""
    out: dict[int, list[str]] = {}
    number, in_block = None, False
    for line in RUNBOOK.read_text().splitlines():
        heading = re.match(r"^## Incident (\d+):", line)
        if heading:
            number = int(heading[1])
            out[number] = []
        elif line.startswith("## "):
            number = None
        elif line.startswith("```"):
            in_block = not in_block
        elif in_block and number is not None and line.split("#")[0].strip():
            out[number].append(line)
    return out


class Operator:
    """Runs runbook lines as an operator would, on this test's central."""

    def __init__(self, settings: CentralSettings, values: dict[str, str]) -> None:
        self.settings = settings
        self.values = values
        self.central: RunningCentral | None = None
        self._running: contextlib.AbstractAsyncContextManager[RunningCentral] | None = None

    async def start(self) -> RunningCentral:
        self._running = start_central(self.settings)
        self.central = await self._running.__aenter__()
        return self.central

    async def stop(self) -> None:
        if self._running is not None:
            await self._running.__aexit__(None, None, None)
        self._running = self.central = None

    async def run(self, line: str) -> None:
        words = shlex.split(self._expand(line), comments=True)
        match words:
            case ["systemctl", "stop", "cs-central"]:
                await self.stop()
            case ["systemctl", "start", "cs-central"]:
                await self.start()
            case ["systemctl", "restart", "cs-central"]:
                await self.stop()
                await self.start()
            case ["cs-admin", *argv]:
                assert self.central is not None, f"{line}: central is stopped"
                token = self.settings.data_dir / "admin.token"
                base = ["--url", str(self.central.admin.base_url), "--token-file", str(token)]
                out, err = io.StringIO(), io.StringIO()

                def admin() -> int:
                    with redirect_stdout(out), redirect_stderr(err):
                        return cs_admin([*base, *argv])

                code = await asyncio.to_thread(admin)
                assert code == 0, f"{line}\n{out.getvalue()}{err.getvalue()}"
            case ["cs-central", *argv]:
                done = await asyncio.to_thread(
                    subprocess.run,
                    [sys.executable, "-m", "central", *argv],
                    env={**os.environ, **settings_env(self.settings)},
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
            case _:
                raise AssertionError(f"the runbook says {line!r}; the test cannot run it")

    def _expand(self, line: str) -> str:
        return re.sub(r"\$([A-Z]+)", lambda m: self.values[m[1]], line)


@contextlib.asynccontextmanager
async def operator(tmp_path: Path, broker: LocalBroker, **settings: Any) -> AsyncIterator[Operator]:
    values = {
        "KIOSK": "KIOSK-B1",
        "SHELF": "SHELF-A",
        "BACKUP": str(tmp_path / "central-backup.db"),
        "PREVIOUS": str(len(migrations.load("sqlite")) - 1),
        "SINCE": "2000-01-01T00:00:00Z",
        "EXPORT": str(tmp_path / "audit.jsonl"),
        "LABELS": str(tmp_path / "labels.pdf"),
    }
    op = Operator(central_settings(tmp_path, broker, **settings), values)
    central = await op.start()
    await seed_library(central.admin)
    try:
        yield op
    finally:
        await op.stop()


async def code(admin: httpx.AsyncClient, path: str) -> str:
    response = await (admin.post(path, json={}) if "passes" in path else admin.get(path))
    return str(response.json()["code"])


async def checkout(admin: httpx.AsyncClient, probe: Probe, kiosk: str = "KIOSK-A1") -> Reason:
    """Ada takes the drill at ``kiosk``; the drill's verdict."""
    opened = await ask(probe, scan(kiosk, await code(admin, "/members/M-1001/passes")))
    assert opened.reason is Reason.SESSION_OPENED, opened.reason
    return (await ask(probe, scan(kiosk, await code(admin, "/items/DRILL-01/label")))).reason


def _lines(path: Path) -> int:
    return path.read_text().count("\n")


def _head(path: Path) -> bytes:
    return path.read_bytes()[:4]


def test_every_incident_of_the_seed_plan_has_commands() -> None:
    assert sorted(incidents()) == [1, 2, 3, 4]
    assert all(len(lines) >= 3 for lines in incidents().values())


async def test_incident_1_bad_release_after_the_breaker_trips(
    tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    async with operator(tmp_path, broker, breaker_min_scans=10, breaker_every_s=0.1) as op:
        assert op.central is not None
        admin = op.central.admin
        probe.subscribe(topics.verdict("KIOSK-A1"))
        forged = (await code(admin, "/items/DRILL-01/label"))[:-4] + "AAAA"
        for _ in range(12):  # a release that garbles codes: every scan fails
            await ask(probe, scan("KIOSK-A1", forged))
        deadline = asyncio.get_running_loop().time() + 10
        while not (await admin.get("/rollout/breaker")).json()["tripped"]:
            assert asyncio.get_running_loop().time() < deadline, "breaker did not trip"
            await asyncio.sleep(0.1)

        for line in incidents()[1]:
            await op.run(line)

        assert op.central is not None
        assert await checkout(op.central.admin, probe) is Reason.CHECKED_OUT


async def test_incident_2_migration_rollback_and_restore_keep_every_checkout(
    tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    async with operator(tmp_path, broker) as op:
        assert op.central is not None
        probe.subscribe(topics.verdict("KIOSK-A1"))
        assert await checkout(op.central.admin, probe) is Reason.CHECKED_OUT

        for line in incidents()[2]:
            await op.run(line)

        assert op.central is not None
        items = {i["item_id"]: i["state"] for i in (await op.central.admin.get("/items")).json()}
        assert items["DRILL-01"] == "checked_out"
        # Migrated down and restored, then up again on start: the newest schema is back.
        newest = len(migrations.load("sqlite"))
        shown = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "central", "migrate", "--show"],
            env={**os.environ, **settings_env(op.settings)},
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"schema at version {newest} of {newest}" in shown.stdout


async def test_incident_3_overload_sheds_checkouts_and_keeps_returns(
    tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    async with operator(tmp_path, broker) as op:
        assert op.central is not None
        admin = op.central.admin
        probe.subscribe(topics.VERDICT_FILTER)
        assert await checkout(admin, probe) is Reason.CHECKED_OUT
        lines = incidents()[3]
        for line in lines[:-1]:
            await op.run(line)
        # Checkout load is shed, and the drill still comes back.
        refused = await ask(probe, scan("KIOSK-A1", await code(admin, "/members/M-1002/passes")))
        assert refused.reason is Reason.FEATURE_DISABLED
        drill = await code(admin, "/items/DRILL-01/label")
        # The drill's shelf is SHELF-A; KIOSK-B1 is the desk's, which takes any returns.
        desk = await admin.patch("/kiosks/KIOSK-B1/config", json={"return_point": True})
        assert desk.status_code == 200, desk.text
        assert (await ask(probe, scan("KIOSK-B1", drill))).reason is Reason.RETURNED
        await op.run(lines[-1])
        assert await checkout(admin, probe) is Reason.CHECKED_OUT


async def test_incident_4_security_kills_passes_locks_out_the_kiosk_and_reprints(
    tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    async with operator(tmp_path, broker) as op:
        assert op.central is not None
        admin = op.central.admin
        probe.subscribe(topics.verdict("KIOSK-A1"))
        leaked_pass = await code(admin, "/members/M-1001/passes")
        old_label = await code(admin, "/items/SAW-01/label")

        for line in incidents()[4]:
            await op.run(line)

        assert (await ask(probe, scan("KIOSK-A1", leaked_pass))).reason is Reason.REVOKED
        kiosk = (await admin.get("/kiosks/KIOSK-B1")).json()
        assert kiosk["retired"] is True
        assert _lines(Path(op.values["EXPORT"])) > 5
        assert _head(Path(op.values["LABELS"])) == b"%PDF"
        opened = await ask(probe, scan("KIOSK-A1", await code(admin, "/members/M-1001/passes")))
        assert opened.reason is Reason.SESSION_OPENED
        assert (await ask(probe, scan("KIOSK-A1", old_label))).reason is Reason.REVOKED
