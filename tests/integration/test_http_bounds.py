"""The HTTP side bounded, through a real central: body sizes, the open claim route, text fields."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from broker.local import LocalBroker
from central.clock import FakeClock
from tests.conftest import RunningCentral, backend_settings, seed_library, start_central
from tests.integration.test_metrics import scrape

FIFTY_MB = 50 * 1024 * 1024


@pytest.fixture
async def sqlite_central(tmp_path: Path, broker: LocalBroker) -> AsyncIterator[RunningCentral]:
    async with (
        backend_settings("sqlite", tmp_path, broker) as settings,
        start_central(settings) as running,
    ):
        yield running


async def raw_post(port: int, path: str, head: dict[str, str], chunks: list[bytes]) -> int:
    """POST by hand (a client that lies or streams), reading only the status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [f"POST {path} HTTP/1.1", "Host: central", *(f"{k}: {v}" for k, v in head.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        return int(status.split()[1])
    finally:
        writer.close()


async def test_a_fifty_megabyte_body_is_refused_before_the_token_or_any_parsing(
    sqlite_central: RunningCentral,
) -> None:
    central = sqlite_central
    port = central.settings.admin_port
    start = time.monotonic()
    # Declared: refused on the header alone, the open route and an admin route alike.
    declared = {"Content-Type": "application/json", "Content-Length": str(FIFTY_MB)}
    assert await raw_post(port, "/enrol/claim", declared, [b'{"code": "']) == 413
    assert await raw_post(port, "/members", declared, [b"{}"]) == 413
    # Streamed without a length: refused once 64 KiB have arrived, the rest never read.
    chunk = b"A" * 16_384
    streamed = [b"4000\r\n" + chunk + b"\r\n" for _ in range(8)]
    chunked = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    opening = b'a\r\n{"code": "\r\n'  # a 10-byte chunk, then the long string
    assert await raw_post(port, "/enrol/claim", chunked, [opening, *streamed]) == 413
    assert time.monotonic() - start < 5, "refused at once, not after reading and parsing"
    metrics = await scrape(central.admin)
    assert metrics[("qr_http_refused_total", (("reason", "TOO_LARGE"),))] == 3
    # An honest request still works, and a big import is allowed its larger size.
    await seed_library(central.admin)
    rows = [{"shelf_id": f"SHELF-{n:05d}", "name": "x" * 60} for n in range(2000)]
    imported = await central.admin.post("/shelves/import", json={"rows": rows}, timeout=60)
    assert (imported.status_code, imported.json()["imported"]) == (201, 2000)


async def test_the_open_claim_route_never_echoes_what_it_is_sent(
    sqlite_central: RunningCentral,
) -> None:
    port = sqlite_central.settings.admin_port
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as anonymous:
        long = await anonymous.post("/enrol/claim", json={"code": "ECHO-ME " * 100})
        extra = await anonymous.post("/enrol/claim", json={"code": "X", "ECHO-KEY": "ECHO-VAL"})
        garbage = await anonymous.post(
            "/enrol/claim", content=b"ECHO-RAW{{{", headers={"Content-Type": "application/json"}
        )
    for response in (long, extra, garbage):
        assert response.status_code == 422
        assert response.json()["reason"] == "INVALID"
        assert "ECHO" not in response.text.replace("ECHO-KEY", ""), response.text
    assert [e["loc"] for e in extra.json()["detail"]] == [["body", "ECHO-KEY"]]


async def test_bogus_claims_are_rate_limited_and_audited_once_per_window(
    tmp_path: Path, broker: LocalBroker
) -> None:
    clock = FakeClock()
    async with (
        backend_settings("sqlite", tmp_path, broker) as settings,
        start_central(settings, clock) as central,
    ):
        port = central.settings.admin_port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as anonymous:
            bogus = [
                (await anonymous.post("/enrol/claim", json={"code": f"CS1.E.K1.{n:04d}"}))
                for n in range(200)
            ]
            statuses = [r.status_code for r in bogus]
            # The burst is checked (and refused), the rest is turned away unchecked.
            assert statuses == [403] * 5 + [429] * 195
            assert bogus[-1].headers["Retry-After"] == "10"
            rows = (await central.admin.get("/audit", params={"limit": 1000})).json()
            assert [r for r in rows if r["action"].startswith("kiosk.claim")] == []
            clock.advance(61)  # the window ends; the next refusal writes its row
            await anonymous.post("/enrol/claim", json={"code": "CS1.E.K1.LAST"})
        rows = (await central.admin.get("/audit", params={"limit": 1000})).json()
        tallies = [r for r in rows if r["action"].startswith("kiosk.claim")]
        assert [(r["action"], r["detail"]["counts"]) for r in tallies] == [
            ("kiosk.claims_refused", {"UNKNOWN_CODE": 5, "RATE_LIMITED": 195})
        ]
        assert tallies[0]["detail"]["callers"] == 1


@pytest.mark.parametrize(
    "bad",
    ["Ada\x00", "Ada\x1b[2J", "\u202eadA", "Ada\u2066x", "Ada\r\nadmin", "Ada\x85"],
    ids=["nul", "escape", "rlo", "isolate", "crlf", "c1"],
)
async def test_text_fields_refuse_control_characters_on_both_backends(
    central: RunningCentral, bad: str
) -> None:
    await seed_library(central.admin)
    attempts = [
        await central.admin.post("/members", json={"member_id": "M-9", "name": bad}),
        await central.admin.patch("/members/M-1001", json={"name": bad}),
        await central.admin.post("/shelves", json={"shelf_id": "SHELF-Z", "name": bad}),
        await central.admin.post("/kiosks/KIOSK-A1/block", json={"reason": bad}),
        await central.admin.post(
            "/members/import", json={"rows": [{"member_id": "M-8", "name": bad}]}
        ),
    ]
    assert [a.status_code for a in attempts] == [422] * len(attempts)
    # In a path or a query: refused before any route (PostgreSQL said 500 to a NUL).
    quoted = "/members/" + quote(bad, safe="")
    for path in (quoted, "/items/DRILL-01%00", "/audit?limit=1%00"):
        response = await central.admin.get(path)
        assert (response.status_code, response.json()["reason"]) == (400, "CONTROL_CHARACTERS")
    members = (await central.admin.get("/members")).json()
    assert {m["member_id"]: m["name"] for m in members} == {"M-1001": "Ada", "M-1002": "Grace"}
    # Ordinary names from anywhere in the world are welcome.
    for name in ("Zoë O'Brien-Łukasz", "محمد", "李小龍"):
        ok = await central.admin.patch("/members/M-1001", json={"name": name})
        assert ok.status_code == 200, ok.text
    assert json.loads((await central.admin.get("/members/M-1001")).text)["name"] == "李小龍"
