"""Backups: an online SQLite backup taken while scans flow restores every committed checkout;
a PostgreSQL pg_dump/pg_restore round trip keeps the data and the audit chain."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from broker import topics
from broker.local import LocalBroker
from broker.messages import CodeScan, Reason, Verdict, encode
from central.audit import verify_chain
from central.clock import FakeClock
from central.storage.postgres import PostgresStore
from testkit.postgres import fresh_database
from testkit.probe import Probe
from testkit.processes import settings_env
from tests.conftest import central_settings, start_central
from tests.support.scans import scan

ITEMS = [f"TOOL-{n:02d}" for n in range(12)]


async def ask(probe: Probe, event: CodeScan) -> Verdict:
    probe.publish(topics.scan(event.kiosk_id), encode(event))
    received = await asyncio.to_thread(probe.next, 10.0, topic_suffix="/verdict")
    verdict = Verdict.model_validate_json(received.payload)
    assert verdict.event_id == event.event_id
    return verdict


def cs_central(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m central argv`` as an operator runs it, with central's environment."""
    return subprocess.run(
        [sys.executable, "-m", "central", *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_backup_taken_mid_flow_restores_every_committed_checkout(
    tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    settings = central_settings(tmp_path / "live", broker)
    copy = tmp_path / "central-backup.db"
    committed: list[str] = []  # event ids of checkouts answered before the backup began
    later: list[str] = []
    async with start_central(settings) as central:
        admin = central.admin
        (await admin.post("/shelves", json={"shelf_id": "S", "name": "Tools"})).raise_for_status()
        for item in ITEMS:
            body = {"item_id": item, "shelf_id": "S", "name": item}
            (await admin.post("/items", json=body)).raise_for_status()
        member = {"member_id": "M-1", "name": "Ada", "checkout_limit": 100}
        (await admin.post("/members", json=member)).raise_for_status()
        for kiosk in ("K-OUT", "K-IN"):
            enrol = {"kiosk_id": kiosk, "shelf_id": "S", "session_timeout_s": 3600}
            (await admin.post("/kiosks", json=enrol)).raise_for_status()
        labels = {i: (await admin.get(f"/items/{i}/label")).json()["code"] for i in ITEMS}
        pass_code = (await admin.post("/members/M-1/passes", json={})).json()["code"]
        probe.subscribe(topics.verdict("K-OUT"))
        probe.subscribe(topics.verdict("K-IN"))
        assert (await ask(probe, scan("K-OUT", pass_code))).reason is Reason.SESSION_OPENED

        backing_up: asyncio.Task[subprocess.CompletedProcess[str]] | None = None
        rounds = 0
        # Check every item out and back in, round after round, until the backup (started
        # in the second round) is done and one more round has gone by: scans flow all along.
        while backing_up is None or not backing_up.done() or rounds < 3:
            rounds += 1
            for n, item in enumerate(ITEMS):
                event = scan("K-OUT", labels[item])
                assert (await ask(probe, event)).reason is Reason.CHECKED_OUT
                (later if backing_up else committed).append(event.event_id)
                if rounds == 2 and n == len(ITEMS) // 2:
                    backing_up = asyncio.create_task(
                        asyncio.to_thread(
                            cs_central, settings_env(settings), "backup", "--to", str(copy)
                        )
                    )
            for item in ITEMS:
                assert (await ask(probe, scan("K-IN", labels[item]))).reason is Reason.RETURNED
        assert backing_up is not None
        done = await backing_up
        assert done.returncode == 0, done.stderr
        assert "chain intact" in done.stdout
        # Central holds its data: a restore over it is refused, even with --force.
        refused = cs_central(settings_env(settings), "restore", "--from", str(copy), "--force")
        assert refused.returncode == 1
        assert "central is running" in refused.stderr
    assert later, "no scans were decided while the backup ran"

    fresh = central_settings(tmp_path / "restored", broker)
    restored = cs_central(settings_env(fresh), "restore", "--from", str(copy))
    assert restored.returncode == 0, restored.stderr
    # A second restore onto the now-existing database needs --force.
    again = cs_central(settings_env(fresh), "restore", "--from", str(copy))
    assert again.returncode == 1
    assert "--force" in again.stderr

    async with start_central(fresh) as central:
        report = (await central.admin.get("/audit/verify")).json()
        assert report["intact"], report
        export = await central.admin.get("/audit/export")
        rows = [json.loads(line) for line in export.text.splitlines()]
    checked_out = {r["event_id"] for r in rows if r["reason"] == "CHECKED_OUT"}
    assert set(committed) <= checked_out
    assert len(checked_out) >= len(committed)


def test_a_backup_that_fails_its_integrity_check_is_not_restored(
    tmp_path: Path, broker: LocalBroker
) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    settings = central_settings(tmp_path, broker)
    result = cs_central(settings_env(settings), "restore", "--from", str(broken))
    assert result.returncode == 1
    assert not settings.sqlite_file.exists()


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="needs pg_dump/pg_restore")
async def test_pg_dump_and_pg_restore_keep_the_data_and_the_audit_chain() -> None:
    # The runbook's PostgreSQL backup, done exactly as written there.
    clock = FakeClock()
    async with fresh_database() as source, fresh_database() as target:
        store = await PostgresStore(source).open()
        try:
            await store.migrate()
            await store.add_shelf("S", "Shelf", clock.now(), "admin:test")
            await store.add_item("I-1", "S", "Drill", clock.now(), "admin:test")
            await store.add_member("M-1", "Ada", clock.now(), "admin:test")
        finally:
            await store.close()
        dump = Path(os.environ.get("TMPDIR", "/tmp")) / f"{target.rsplit('/', 1)[1]}.dump"
        try:
            for command in (
                ["pg_dump", "-Fc", "--no-owner", "-f", str(dump), source],
                ["pg_restore", "--no-owner", "--exit-on-error", "-d", target, str(dump)],
            ):
                process = await asyncio.create_subprocess_exec(*command)
                assert await asyncio.wait_for(process.wait(), 60) == 0, command
        finally:
            dump.unlink(missing_ok=True)
        restored = await PostgresStore(target).open()
        try:
            report = await verify_chain(restored)
            member = await restored.get_member("M-1")
            # The restored database takes new writes, and they extend the same chain.
            await restored.add_item("I-2", "S", "Saw", clock.now(), "admin:test")
            after = await verify_chain(restored)
        finally:
            await restored.close()
    assert (report.intact, report.head_pos) == (True, 3)
    assert member is not None
    assert member.name == "Ada"
    assert (after.intact, after.head_pos) == (True, 4)
