"""What people read never carries control characters from data: cs-admin tables, messages, logs."""

from __future__ import annotations

import io
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.local import LocalBroker
from central import logs
from tests.conftest import RunningCentral, backend_settings, seed_library, start_central
from tests.integration.test_admin_cli import run_cli, token_file_of, url_of

# What a terminal would obey: C0/C1 controls, DEL, bidi embeddings/overrides/isolates/marks.
OBEYED = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# A name written before central refused such names (or by hand into the database): it
# clears the screen, sounds the bell, and shows "Ada" reversed as if it were another member.
HOSTILE = "Ada\x1b[2J\x07\u202eadA\r"


@pytest.fixture
async def sqlite_central(tmp_path: Path, broker: LocalBroker) -> AsyncIterator[RunningCentral]:
    async with (
        backend_settings("sqlite", tmp_path, broker) as settings,
        start_central(settings) as running,
    ):
        yield running


async def test_cs_admin_shows_names_from_data_escaped_never_obeyed(
    sqlite_central: RunningCentral, capsys: pytest.CaptureFixture[str]
) -> None:
    central = sqlite_central
    await seed_library(central.admin)
    with sqlite3.connect(central.settings.sqlite_file) as db:
        db.execute("UPDATE members SET name = ? WHERE member_id = 'M-1001'", (HOSTILE,))
    base = ["--url", url_of(central), "--token-file", str(token_file_of(central))]

    listed = await run_cli(capsys, [*base, "members"])
    assert listed.code == 0, listed.err
    assert OBEYED.search(listed.out) is None, repr(listed.out)
    assert "Ada\\x1b[2J\\x07\\u202eadA\\x0d" in listed.out
    # The JSON form is for scripts: escaped by the JSON encoder, and the same text decoded.
    as_json = await run_cli(capsys, [*base, "--json", "members"])
    assert OBEYED.search(as_json.out) is None
    assert {m["member_id"]: m["name"] for m in as_json.json()}["M-1001"] == HOSTILE
    # A refusal message quoting what central said is escaped too.
    refused = await run_cli(capsys, [*base, "edit", "member", "M-1001", "--name", HOSTILE])
    assert refused.code != 0
    assert OBEYED.search(refused.err) is None, repr(refused.err)


def test_service_logs_escape_control_characters_from_data() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logs.setup("INFO", service="central", stream=stream)
        logging.getLogger("central.test").warning("member name %s", HOSTILE)
    finally:
        root.handlers[:], root.level = saved
    line = stream.getvalue()
    assert "member name Ada" in line
    assert OBEYED.search(line.rstrip("\n")) is None, repr(line)
