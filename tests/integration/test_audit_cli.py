"""``cs-admin audit verify|export`` and ``loans overdue`` against a real central, both backends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from broker import topics
from broker.local import LocalBroker
from broker.messages import Reason, Verdict, encode
from central.clock import FakeClock
from central.storage.chain import ChainedRow, ChainHead, ChainWalk
from testkit.probe import Probe
from tests.conftest import RunningCentral, backend_settings, seed_library, start_central
from tests.integration.test_admin_cli import Cli, Outcome, parse_table, run_cli
from tests.support.scans import scan


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture(params=["sqlite", "postgres"])
async def timed_central(
    request: pytest.FixtureRequest, tmp_path: Path, broker: LocalBroker, clock: FakeClock
) -> AsyncIterator[RunningCentral]:
    """A real central whose clock the test moves."""
    async with (
        backend_settings(request.param, tmp_path, broker) as settings,
        start_central(settings, clock) as running,
    ):
        yield running


@pytest.fixture
def cli(timed_central: RunningCentral, capsys: pytest.CaptureFixture[str]) -> Cli:
    async def run(*argv: str) -> Outcome:
        base = [
            "--url",
            f"http://127.0.0.1:{timed_central.settings.admin_port}",
            "--token-file",
            str(timed_central.settings.data_dir / "admin.token"),
        ]
        return await run_cli(capsys, [*base, *argv])

    return run


async def tamper(central: RunningCentral, statement: str) -> None:
    """Change the audit log behind central's back, triggers lifted on our own connection."""
    settings = central.settings
    if settings.database == "sqlite":
        with contextlib.closing(sqlite3.connect(settings.sqlite_file, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DROP TRIGGER qr_audit_log_no_update")
            db.execute(statement)
            db.execute(
                "CREATE TRIGGER qr_audit_log_no_update BEFORE UPDATE ON qr_audit_log"
                " BEGIN SELECT RAISE(ABORT, 'qr_audit_log is append-only'); END"
            )
            db.execute("COMMIT")
        return
    assert settings.postgres_dsn is not None
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE qr_audit_log DISABLE TRIGGER qr_audit_log_no_change")
            await conn.execute(statement)
            await conn.execute("ALTER TABLE qr_audit_log ENABLE TRIGGER qr_audit_log_no_change")
    finally:
        await conn.close()


async def test_verify_export_and_a_tampered_row(
    cli: Cli, timed_central: RunningCentral, clock: FakeClock, tmp_path: Path
) -> None:
    await seed_library(timed_central.admin)
    cut = clock.now() + timedelta(hours=1)
    clock.advance(7200)
    body = {"member_id": "M-1003", "name": "Edsger"}
    (await timed_central.admin.post("/members", json=body)).raise_for_status()
    (await timed_central.admin.post("/members/M-1003/passes", json={})).raise_for_status()

    verified = await cli("audit", "verify")
    assert verified.code == 0, verified.err
    _, [row] = parse_table(verified.out)
    assert (row["INTACT"], row["PENDING"], row["BROKEN_SEQ"]) == ("True", "0", "")
    head_seq = int(row["CHECKED"])
    assert head_seq == 11  # 9 seed rows, a member, a pass

    out = tmp_path / "audit.jsonl"
    exported = await cli("audit", "export", "--out", str(out))
    assert exported.code == 0, exported.err
    rows = [ChainedRow.from_json(json.loads(line)) for line in out.read_text().splitlines()]
    assert [r.seq for r in rows] == list(range(1, head_seq + 1))
    rows.sort(key=lambda r: r.chain_pos or 0)
    # The export stands on its own: its hashes recompute and chain without central.
    walk = ChainWalk(ChainHead(0, head_seq, rows[-1].row_hash or ""))
    assert walk.check_page(rows), walk.problem
    assert walk.finish(), walk.problem
    # Time windows: the seed before the cut, Edsger after it.
    later = await cli("audit", "export", "--since", cut.isoformat())
    assert [json.loads(line)["action"] for line in later.out.splitlines()] == [
        "member.add",
        "pass.issue",
    ]
    earlier = await cli("audit", "export", "--until", cut.replace(tzinfo=None).isoformat())
    assert len(earlier.out.splitlines()) == 9
    with pytest.raises(SystemExit) as bad:  # argparse refuses it, exit 2
        await cli("audit", "export", "--since", "last tuesday")
    assert bad.value.code == 2
    # The tail still works as before.
    tail = await cli("--json", "audit", "--limit", "2")
    assert [r["action"] for r in json.loads(tail.out)] == ["member.add", "pass.issue"]

    await tamper(timed_central, "UPDATE qr_audit_log SET member_id = 'M-666' WHERE seq = 10")
    broken = await cli("--json", "audit", "verify")
    assert broken.code == 1
    assert json.loads(broken.out)["broken_seq"] == 10
    assert "audit chain broken at seq 10" in broken.err


async def test_overdue_loans_are_listed_and_counted(
    cli: Cli, timed_central: RunningCentral, clock: FakeClock, broker: LocalBroker
) -> None:
    admin = timed_central.admin
    await seed_library(admin)
    pass_code = (await admin.post("/members/M-1001/passes", json={})).json()["code"]
    drill = (await admin.get("/items/DRILL-01/label")).json()["code"]
    probe = Probe(broker.port, client_id="probe-loans")
    try:
        probe.subscribe(topics.verdict("KIOSK-A1"))
        for code in (pass_code, drill):
            event = scan("KIOSK-A1", code)
            probe.publish(topics.scan("KIOSK-A1"), encode(event))
            got = await asyncio.to_thread(probe.next, 10.0, topic_suffix="/verdict")
            verdict = Verdict.model_validate_json(got.payload)
            assert verdict.reason in (Reason.SESSION_OPENED, Reason.CHECKED_OUT)
    finally:
        probe.close()
    assert verdict.reason is Reason.CHECKED_OUT

    none_yet = await cli("loans", "overdue")
    assert (none_yet.code, parse_table(none_yet.out)[1]) == (0, [])
    clock.advance(timedelta(days=17).total_seconds())  # loan_days 14: three days late
    listed = await cli("loans", "overdue")
    assert listed.code == 0, listed.err
    _, rows = parse_table(listed.out)
    assert [(r["MEMBER_ID"], r["MEMBER_NAME"], r["ITEM_ID"], r["DAYS_LATE"]) for r in rows] == [
        ("M-1001", "Ada", "DRILL-01", "3")
    ]
    metrics = (await admin.get("/metrics")).text
    assert "qr_overdue_items 1.0" in metrics
