"""No single message or kiosk stops or slows the consumer, through the real broker and central.

Each test plays an attack found from outside: a poisoned scan time, a retained scan, an
event that fails on its own inside the database, a stuck consumer behind a green /ready,
another kiosk's event id, one kiosk flooding garbage while honest kiosks walk up, and a
copied label shown at another shelf.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from broker import topics
from broker.local import LocalBroker
from broker.messages import Reason, SecurityAlert, Verdict, encode
from central.security import ALERT_AUTO_BLOCK
from central.settings import CentralSettings
from testkit.probe import Probe
from tests.conftest import RunningCentral, backend_settings, seed_library, start_central
from tests.integration.test_admin_cli import Cli
from tests.support.scans import ask, scan

REPO = Path(__file__).resolve().parents[2]
BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"])
# Times that are valid ISO-8601 with an offset but year 0 or 10000 once in UTC.
POISONED_TIMES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")


def raw_scan(kiosk_id: str, code: str, scanned_at: str, event_id: str | None = None) -> bytes:
    """A scan payload with its time spelled as given (a model would refuse to build it)."""
    return json.dumps(
        {
            "v": 1,
            "type": "code",
            "event_id": event_id or uuid.uuid4().hex,
            "kiosk_id": kiosk_id,
            "code": code,
            "scanned_at": scanned_at,
        }
    ).encode()


async def label(central: RunningCentral, item_id: str) -> str:
    return str((await central.admin.get(f"/items/{item_id}/label")).json()["code"])


async def new_pass(central: RunningCentral, member_id: str = "M-1001") -> str:
    response = await central.admin.post(f"/members/{member_id}/passes", json={})
    response.raise_for_status()
    return str(response.json()["code"])


async def verdicts_until(
    probe: Probe, done: Callable[[list[Verdict]], bool], within: float = 15.0
) -> list[Verdict]:
    """Every verdict the probe sees until ``done`` says enough (or ``within`` runs out)."""
    seen: list[Verdict] = []
    deadline = time.monotonic() + within
    while not done(seen):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"only {[(v.kiosk_id, v.reason.value) for v in seen]}")
        received = await asyncio.to_thread(probe.next, left, topic_suffix="/verdict")
        seen.append(Verdict.model_validate_json(received.payload))
    return seen


def by_event(verdicts: list[Verdict]) -> dict[str, Verdict]:
    return {verdict.event_id: verdict for verdict in verdicts}


async def held_by(central: RunningCentral, item_id: str) -> str:
    items = {i["item_id"]: i["state"] for i in (await central.admin.get("/items")).json()}
    return str(items[item_id])


@contextlib.asynccontextmanager
async def database(settings: CentralSettings) -> AsyncIterator[Callable[[str], Any]]:
    """A second connection to central's own database, as an operator's psql would be."""
    if settings.database == "sqlite":
        conn = sqlite3.connect(
            settings.sqlite_file, isolation_level=None, timeout=10, check_same_thread=False
        )
        try:
            yield lambda statement: asyncio.to_thread(conn.execute, statement)
        finally:
            conn.close()
        return
    assert settings.postgres_dsn is not None
    pg = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        yield pg.execute
    finally:
        await pg.close()


# --- one poisoned message ---------------------------------------------------------------


@BACKENDS
async def test_a_poisoned_scan_time_is_refused_and_every_kiosk_is_still_answered(
    backend: str, tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    async with backend_settings(backend, tmp_path, broker) as settings:
        async with start_central(settings) as central:
            await seed_library(central.admin)
            rake = await label(central, "RAKE-01")
            probe.subscribe(topics.VERDICT_FILTER)
            poisoned = [uuid.uuid4().hex for _ in POISONED_TIMES]
            for event_id, at in zip(poisoned, POISONED_TIMES, strict=True):
                drill = await label(central, "DRILL-01")
                probe.publish(topics.scan("KIOSK-A1"), raw_scan("KIOSK-A1", drill, at, event_id))
            # Another kiosk's scan right behind them is decided promptly.
            honest = scan("KIOSK-B1", rake)
            probe.publish(topics.scan("KIOSK-B1"), encode(honest))
            wanted = {*poisoned, honest.event_id}
            seen = by_event(await verdicts_until(probe, lambda v: wanted <= set(by_event(v))))
            assert seen[honest.event_id].reason is Reason.NO_SESSION
            for event_id in poisoned:
                assert (seen[event_id].kiosk_id, seen[event_id].reason) == (
                    "KIOSK-A1",
                    Reason.MALFORMED,
                )
        # The poisoned messages were acknowledged, not left in central's session: a
        # restarted central decides at once.
        async with start_central(settings) as again:
            after = await ask(probe, scan("KIOSK-B1", rake))
            assert after.reason is Reason.NO_SESSION
            assert (await again.admin.get("/ready")).status_code == 200


@BACKENDS
async def test_an_event_that_fails_on_its_own_is_dead_lettered_and_the_rest_are_decided(
    backend: str, tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    async with (
        backend_settings(backend, tmp_path, broker) as settings,
        start_central(settings) as central,
        database(settings) as execute,
    ):
        await seed_library(central.admin)
        # Stands for any fault one event's data can cause in the database (a value out of
        # range, a bad character): the store refuses to record this one event id.
        if backend == "sqlite":
            await execute(
                "CREATE TRIGGER poison BEFORE INSERT ON scan_events"
                " WHEN NEW.event_id LIKE 'poison%' BEGIN SELECT json('not json'); END"
            )
        else:
            await execute(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " IF NEW.event_id LIKE 'poison%' THEN"
                " RAISE EXCEPTION 'poisoned' USING ERRCODE = '22003'; END IF;"
                " RETURN NEW; END $$"
            )
            await execute(
                "CREATE TRIGGER poison BEFORE INSERT ON scan_events"
                " FOR EACH ROW EXECUTE FUNCTION poison()"
            )
        rake = await label(central, "RAKE-01")
        probe.subscribe(topics.VERDICT_FILTER)
        poisoned = scan("KIOSK-A1", rake, event_id=f"poison{uuid.uuid4().hex}")
        honest = [scan("KIOSK-B1", rake), scan("KIOSK-A1", rake), scan("KIOSK-B1", rake)]
        for event in (poisoned, *honest):
            probe.publish(topics.scan(event.kiosk_id), encode(event))
        wanted = {poisoned.event_id, *(e.event_id for e in honest)}
        seen = by_event(await verdicts_until(probe, lambda v: wanted <= set(by_event(v))))
        assert seen[poisoned.event_id].reason is Reason.MALFORMED
        assert [seen[e.event_id].reason for e in honest] == [Reason.NO_SESSION] * 3
        # Answered and acknowledged once: no retry loop behind it.
        after = await ask(probe, scan("KIOSK-B1", rake))
        assert after.reason is Reason.NO_SESSION
        assert (await central.admin.get("/ready")).status_code == 200


# --- retained scans ---------------------------------------------------------------------


@BACKENDS
async def test_a_retained_scan_is_never_decided_and_cannot_stall_a_later_central(
    backend: str, tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    async with backend_settings(backend, tmp_path, broker) as settings:
        async with start_central(settings) as central:
            await seed_library(central.admin)
            drill = await label(central, "DRILL-01")
            probe.subscribe(topics.verdict("KIOSK-A1"))
            assert (await ask(probe, scan("KIOSK-A1", await new_pass(central)))).accepted
            assert (await ask(probe, scan("KIOSK-A1", drill))).reason is Reason.CHECKED_OUT
            # Live, with the retain flag: refused, not decided.
            live = scan("KIOSK-A1", drill)
            probe.publish(topics.scan("KIOSK-A1"), encode(live), retain=True)
            seen = await verdicts_until(probe, lambda v: live.event_id in by_event(v))
            assert by_event(seen)[live.event_id].reason is Reason.MALFORMED
            assert await held_by(central, "DRILL-01") == "checked_out"
        # Published retained while no central runs: the next central is handed it on
        # subscribe, refuses it and clears it.
        waiting = scan("KIOSK-A1", drill)
        probe.publish(topics.scan("KIOSK-A1"), encode(waiting), retain=True)
        async with start_central(settings) as later:
            seen = await verdicts_until(probe, lambda v: waiting.event_id in by_event(v))
            assert by_event(seen)[waiting.event_id].reason is Reason.MALFORMED
            assert await held_by(later, "DRILL-01") == "checked_out"
            rake = await label(later, "RAKE-01")
            probe.subscribe(topics.verdict("KIOSK-B1"))
            assert (await ask(probe, scan("KIOSK-B1", rake))).reason is Reason.NO_SESSION
            metrics = (await later.admin.get("/metrics")).text
            assert 'qr_scans_dropped_total{kind="retained"}' in metrics
        # Nothing is left retained on the kiosk's scan topic for the central after that.
        watcher = Probe(broker.port, client_id=f"watcher-{uuid.uuid4().hex[:6]}")
        try:
            watcher.subscribe(topics.scan("KIOSK-A1"))
            with pytest.raises(TimeoutError):
                watcher.next(1.0)
        finally:
            watcher.close()


# --- /ready ------------------------------------------------------------------------------


@BACKENDS
async def test_ready_is_not_green_while_scans_wait_undecided(
    backend: str, tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    async with (
        backend_settings(backend, tmp_path, broker, ready_max_stall_s=2.0) as settings,
        start_central(settings) as central,
        database(settings) as execute,
        httpx.AsyncClient(base_url=str(central.admin.base_url), timeout=10) as anonymous,
    ):
        await seed_library(central.admin)
        rake = await label(central, "RAKE-01")
        probe.subscribe(topics.verdict("KIOSK-B1"))
        assert (await ask(probe, scan("KIOSK-B1", rake))).reason is Reason.NO_SESSION
        assert (await anonymous.get("/ready")).status_code == 200
        # Someone holds the lock central needs (a migration, a stuck admin session): the
        # database still answers a ping, the queue is short, and nothing is decided.
        if backend == "sqlite":
            await execute("BEGIN IMMEDIATE")
        else:
            await execute("BEGIN")
            await execute("SELECT 1 FROM kiosks WHERE kiosk_id = 'KIOSK-B1' FOR UPDATE")
        try:
            waiting = scan("KIOSK-B1", rake)
            probe.publish(topics.scan("KIOSK-B1"), encode(waiting))
            deadline = time.monotonic() + 20
            ready = await anonymous.get("/ready")
            while ready.status_code == 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                ready = await anonymous.get("/ready")
            assert ready.status_code == 503, ready.text
            [problem] = ready.json()["problems"]
            assert problem.startswith("consumer: 1 scans waiting, none decided for")
            assert ready.json()["checks"]["database"] == "ok"
        finally:
            await execute("ROLLBACK")
        # Released, the scan is decided and /ready is green again.
        seen = await verdicts_until(probe, lambda v: waiting.event_id in by_event(v), 30)
        assert by_event(seen)[waiting.event_id].reason is Reason.NO_SESSION
        assert (await anonymous.get("/ready")).status_code == 200


# --- event ids are the kiosk's own --------------------------------------------------------


async def test_event_ids_are_per_kiosk_and_a_verdict_goes_only_to_its_kiosk(
    central: RunningCentral, probe: Probe
) -> None:
    await seed_library(central.admin)
    rake = await label(central, "RAKE-01")
    probe.subscribe(topics.VERDICT_FILTER)
    shared = uuid.uuid4().hex
    first = scan("KIOSK-B1", rake, event_id=shared)
    assert (await ask(probe, first)).reason is Reason.NO_SESSION
    # Another kiosk sends a scan with the same event id: it is its own scan, decided on
    # its own, and the first kiosk hears nothing more.
    second = scan("KIOSK-A1", await new_pass(central), event_id=shared)
    probe.publish(topics.scan("KIOSK-A1"), encode(second))
    seen = await verdicts_until(probe, lambda v: any(x.kiosk_id == "KIOSK-A1" for x in v))
    await asyncio.sleep(0.5)
    while not probe.inbox.empty():
        seen.append(Verdict.model_validate_json(probe.inbox.get().payload))
    assert [(v.kiosk_id, v.event_id, v.reason) for v in seen] == [
        ("KIOSK-A1", shared, Reason.SESSION_OPENED)
    ]
    # A redelivery is still idempotent, per kiosk.
    assert (await ask(probe, second)).reason is Reason.SESSION_OPENED
    assert (await ask(probe, first)).reason is Reason.NO_SESSION


# --- one kiosk flooding garbage -----------------------------------------------------------

HONEST_KIOSKS = tuple(f"KIOSK-H{n}" for n in range(10))
FLOOD = 30_000  # garbage messages from one kiosk...
FLOOD_RATE = 10_000.0  # ...at this many a second


class Timings:
    """A verdict listener that notes when each verdict arrived (on paho's thread)."""

    def __init__(self, port: int) -> None:
        self.arrived: dict[str, float] = {}
        self.reasons: dict[str, Reason] = {}
        self.alerts: list[SecurityAlert] = []
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"timings-{uuid.uuid4().hex[:6]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topics.VERDICT_FILTER, qos=1)
        self.client.subscribe(topics.ALERTS, qos=1)
        time.sleep(0.1)

    def _message(self, _client: object, _userdata: object, message: paho.MQTTMessage) -> None:
        at = time.monotonic()
        if message.topic == topics.ALERTS:
            self.alerts.append(SecurityAlert.model_validate_json(message.payload))
            return
        verdict = Verdict.model_validate_json(message.payload)
        self.arrived.setdefault(verdict.event_id, at)
        self.reasons[verdict.event_id] = verdict.reason

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def flood(port: int, kiosk_id: str, count: int, rate: float) -> float:
    """Publish ``count`` garbage scans as ``kiosk_id`` at ``rate`` a second; seconds taken."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"flood-{uuid.uuid4().hex[:6]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    topic = topics.scan(kiosk_id)
    started = time.monotonic()
    last = None
    for n in range(count):
        # Garbage of the cheapest and the costliest kinds to refuse, with event ids to answer.
        body = {"v": 1, "type": "code", "event_id": f"flood{n:08d}", "kiosk_id": kiosk_id}
        payload = b"{not json" if n % 2 else json.dumps(body).encode()
        last = client.publish(topic, payload, qos=0)
        if n % 100 == 99:
            ahead = started + (n + 1) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    assert last is not None
    last.wait_for_publish(30)
    seconds = time.monotonic() - started
    client.disconnect()
    client.loop_stop()
    return seconds


async def flood_from_elsewhere(port: int, kiosk_id: str, count: int, rate: float) -> float:
    """:func:`flood` from a process of its own, as a flooding kiosk is: in this process its
    publishing loop would compete with central for the interpreter lock."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from tests.integration.test_consumer_resilience import flood;"
        f" print(flood({port}, {kiosk_id!r}, {count}, {rate}))",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    return float(out)


async def test_a_kiosk_flooding_garbage_is_blocked_and_honest_verdicts_stay_prompt(
    tmp_path: Path, broker: LocalBroker
) -> None:
    async with (
        backend_settings("sqlite", tmp_path, broker, garbage_window_s=1.0) as settings,
        start_central(settings) as central,
    ):
        await seed_library(central.admin)
        for kiosk_id in HONEST_KIOSKS:
            response = await central.admin.post(
                "/kiosks", json={"kiosk_id": kiosk_id, "shelf_id": "SHELF-B"}
            )
            response.raise_for_status()
        rake = await label(central, "RAKE-01")
        timings = Timings(broker.port)
        honest = Probe(broker.port, client_id=f"honest-{uuid.uuid4().hex[:6]}")
        sent: dict[str, float] = {}
        try:
            flooding = asyncio.create_task(
                flood_from_elsewhere(broker.port, "KIOSK-A1", FLOOD, FLOOD_RATE)
            )
            # Honest kiosks walk up throughout the flood and a little after it: 50 scans/s.
            rounds = 0
            while not flooding.done() or rounds < 20:
                for kiosk_id in HONEST_KIOSKS:
                    event = scan(kiosk_id, rake)
                    sent[event.event_id] = time.monotonic()
                    await asyncio.to_thread(honest.publish, topics.scan(kiosk_id), encode(event))
                rounds += 1
                await asyncio.sleep(0.2)
            flood_s = await flooding
            deadline = time.monotonic() + 15
            while set(sent) - set(timings.arrived) and time.monotonic() < deadline:  # noqa: ASYNC110 - filled on paho's thread
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.5)  # the last window closes and is written
        finally:
            honest.close()
            timings.close()
        assert set(sent) <= set(timings.arrived), "an honest scan went unanswered"
        assert {timings.reasons[e] for e in sent} == {Reason.NO_SESSION}
        latencies = sorted(timings.arrived[e] - sent[e] for e in sent)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(  # the figure docs/security.md quotes (pytest -s)
            f"flood of {FLOOD} in {flood_s:.2f} s; {len(latencies)} honest verdicts:"
            f" median {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
        )
        # The 100 ms bar is bench.hostile's, on a machine to itself; here the other test
        # worker shares the two cores. An unblocked flood delays honest verdicts by tens of
        # seconds, so 1.5 s still tells the defence from its absence.
        assert p99 < 1.5, f"honest p99 {p99 * 1000:.0f} ms during the flood"
        # The flooder is blocked, audited and reported, and the audit log holds a few
        # aggregated rows for its ten thousand messages, not one each.
        shown = (await central.admin.get("/kiosks/KIOSK-A1")).json()
        assert shown["blocked"] is True
        audit = (await central.admin.get("/audit", params={"limit": 10_000})).json()
        dropped = [row for row in audit if row["action"] == "scan.dropped"]
        assert 1 <= len(dropped) <= 20, len(dropped)
        assert {row["kiosk_id"] for row in dropped} == {"KIOSK-A1"}
        assert sum(row["detail"]["total"] for row in dropped) <= FLOOD
        assert [row["reason"] for row in audit if row["action"] == "security.alert"] == [
            ALERT_AUTO_BLOCK
        ]
        assert [a.kiosk_id for a in timings.alerts] == ["KIOSK-A1"]
        assert len([row for row in audit if row["action"] != "scan.code"]) < 100
        # A few refusals were answered so an honest kiosk with a bug would show it; the
        # flood was not echoed back message for message.
        flood_answers = [e for e in timings.reasons if e.startswith("flood")]
        assert 0 < len(flood_answers) <= 100
        assert datetime.now(UTC) < datetime.fromisoformat(shown["blocked_until"])


# --- a copied label ----------------------------------------------------------------------


async def test_a_copied_label_returns_nothing_away_from_its_shelf_but_a_return_point_takes_it(
    central: RunningCentral, probe: Probe, cli: Cli
) -> None:
    await seed_library(central.admin)
    drill = await label(central, "DRILL-01")  # lives on SHELF-A; KIOSK-B1 serves SHELF-B
    probe.subscribe(topics.VERDICT_FILTER)
    assert (await ask(probe, scan("KIOSK-A1", await new_pass(central)))).accepted
    assert (await ask(probe, scan("KIOSK-A1", drill))).reason is Reason.CHECKED_OUT
    # A photo of the drill's label shown at another shelf's kiosk returns nothing…
    elsewhere = await ask(probe, scan("KIOSK-B1", drill))
    assert (elsewhere.reason, elsewhere.accepted) == (Reason.WRONG_SHELF, False)
    assert await held_by(central, "DRILL-01") == "checked_out"
    # …until an admin makes that kiosk a return point (the front desk's, say).
    made = await cli("kiosk", "config", "KIOSK-B1", "--return-point")
    assert made.code == 0, made.err
    shown = await cli("kiosk", "show", "KIOSK-B1")
    assert "return_point" in shown.out
    assert (await central.admin.get("/kiosks/KIOSK-B1")).json()["return_point"] is True
    assert (await ask(probe, scan("KIOSK-B1", drill))).reason is Reason.RETURNED
    audit = (await central.admin.get("/audit", params={"limit": 1000})).json()
    [configured] = [row for row in audit if row["action"] == "kiosk.configure"]
    assert configured["detail"]["changes"]["return_point"] == [False, True]
    # A loan that short is marked for staff to look at.
    [returned] = [row for row in audit if row["reason"] == "RETURNED"]
    assert returned["detail"]["quick_return"] is True
