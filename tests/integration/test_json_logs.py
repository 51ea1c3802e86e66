"""Central and kiosk log one JSON object per line, with the scan's ids and never a code."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker import topics
from broker.local import LocalBroker
from central import logs as central_logs
from kiosk import logs as kiosk_logs
from kiosk.feedback import Signal
from testkit.probe import Probe
from tests.conftest import RunningCentral, seed_library
from tests.integration.test_rollout import a_label, a_pass
from tests.support.kiosks import running_kiosk, until
from tests.support.scans import ask, scan


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Whatever the root logger's handlers are now, restored after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield io.StringIO()
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    text = buffer.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # every line parses


def secrets_of(code: str) -> list[str]:
    """The code itself and its MAC: neither may reach a log."""
    return [code, code.rsplit(".", 1)[1]]


@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
async def test_central_logs_each_scan_as_json_with_ids_and_no_code(
    central: RunningCentral, probe: Probe, captured: io.StringIO
) -> None:
    await seed_library(central.admin)
    pass_code = await a_pass(central.admin)
    drill = await a_label(central.admin, "DRILL-01")
    central_logs.setup("DEBUG", service="central", stream=captured)
    probe.subscribe(topics.verdict("KIOSK-A1"))
    opening, taking = scan("KIOSK-A1", pass_code), scan("KIOSK-A1", drill)
    await ask(probe, opening)
    await ask(probe, taking)
    # A log line quoting a code by mistake still comes out clean.
    logging.getLogger("central.test").warning("payload was %s", pass_code)

    records = lines(captured)
    by_event = {r.get("event_id"): r for r in records if r.get("message", "").startswith("verdict")}
    assert by_event[opening.event_id]["kiosk_id"] == "KIOSK-A1"
    assert by_event[opening.event_id]["member_id"] == "M-1001"
    assert by_event[opening.event_id]["message"] == "verdict SESSION_OPENED"
    assert by_event[taking.event_id]["member_id"] == "M-1001"
    assert by_event[taking.event_id]["item_id"] == "DRILL-01"
    assert all(r["service"] == "central" and "level" in r and "ts" in r for r in records)
    text = captured.getvalue()
    for secret in [*secrets_of(pass_code), *secrets_of(drill)]:
        assert secret not in text
    assert "payload was code#" in text


@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
async def test_kiosk_logs_as_json_with_its_id_and_event_ids_and_no_code(
    central: RunningCentral, broker: LocalBroker, tmp_path: Path, captured: io.StringIO
) -> None:
    await seed_library(central.admin)
    pass_code = await a_pass(central.admin)
    async with running_kiosk("KIOSK-A1", broker, tmp_path / "k") as k:
        await until(lambda: k.kiosk.config is not None)
        kiosk_logs.setup("INFO", stream=captured)
        await k.show(pass_code, Signal.SESSION_OPENED)
    records = [r for r in lines(captured) if r["logger"] == "kiosk.core"]
    scans = [r for r in records if r["message"].startswith("scan ")]
    verdicts = [r for r in records if r["message"].startswith("verdict ")]
    assert scans
    assert verdicts
    assert scans[0]["event_id"] == verdicts[0]["event_id"]
    assert all(r["kiosk_id"] == "KIOSK-A1" and r["service"] == "kiosk" for r in records)
    assert all("level" in r and "ts" in r for r in records)
    for secret in secrets_of(pass_code):
        assert secret not in captured.getvalue()
