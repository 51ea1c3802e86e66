"""Hostile payloads by the ten thousand through the real broker, with honest scans in between.

Hypothesis draws the payloads (oversized, not JSON, wrong types, unknown protocol versions,
a payload speaking for another kiosk, QR text of any bytes and length, times far in the
past or future, deep nesting, unknown fields, broken topics). Every one must be refused
with a verdict that accepts nothing, or dropped and counted (audited as aggregated rows,
the hostile kiosk blocked on the way); every honest scan
between them must get exactly the verdict it would get on a quiet day; and central must
be healthy at the end.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from broker import topics
from broker.messages import MAX_PAYLOAD_BYTES, Reason, SessionDone, Verdict, encode
from central.storage.postgres import PostgresStore
from central.storage.sqlite import SqliteStore
from testkit.probe import Probe
from tests.conftest import RunningCentral, seed_library
from tests.integration.test_metrics import scrape
from tests.support.scans import scan
from tests.unit.central.support import query

HOSTILE = 20_000
# PostgreSQL decides each event in its own transaction, several times slower on this
# 2-core machine: a share of the same payloads keeps the test under a minute there, and
# keeps the backlog short of the minute after which an honest scan counts as late.
ON_BACKEND = {"sqlite": HOSTILE, "postgres": 4_000}
PER_EXAMPLE = 20  # hostile payloads per Hypothesis example, so no example overruns
HOSTILE_KIOSK = "KIOSK-A1"
# Unknown kiosks spread the load over several topics (PostgreSQL decides kiosks in parallel).
STRANGERS = tuple(f"KIOSK-X{n}" for n in range(5))
HONEST_KIOSK = "KIOSK-B1"
EVENT_ID = "@EVENT@"  # replaced by a unique id per payload
DRILL_LABEL = "@DRILL@"  # replaced by the drill's real label (never checked out here)

# Kinds that can never parse: a verdict for one of them, if any, says MALFORMED (or
# KIOSK_BLOCKED from a kiosk central does not know).
BROKEN = frozenset({"version", "oversized", "not_json", "nesting", "extra_field", "mismatch"})
EVENT_ID_RE = re.compile(r"[0-9A-Za-z-]{8,64}")


@dataclass(frozen=True)
class Hostile:
    """One payload as drawn: what kind of attack, which kiosk's topic, and the bytes."""

    kind: str
    kiosk: str  # the topic's kiosk level (may be no valid id at all)
    body: Any  # a dict to fill in and encode, or raw bytes


# Flat strategies on purpose: recursive ones and regexes cost about a millisecond a draw,
# and this test draws twenty thousand payloads (deep nesting has its own kind below).
json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.lists(st.integers() | st.text(max_size=4), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers() | st.none(), max_size=2),
)
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
CODE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-"
# Year 1 to year 9999, as POSIX seconds.
EPOCHS = st.integers(-62_135_596_800, 253_402_300_799)
FIELDS = ("v", "type", "event_id", "kiosk_id", "code", "scanned_at", "queued")


def template(kiosk: str = HOSTILE_KIOSK, code: str = DRILL_LABEL) -> dict[str, Any]:
    return {
        "v": 1,
        "type": "code",
        "event_id": EVENT_ID,
        "kiosk_id": kiosk,
        "code": code,
        "scanned_at": datetime.now(UTC).isoformat(),
    }


def json_of_size(kiosk: str, size: int) -> bytes:
    """A scan whose code pads it to exactly ``size`` bytes (before the event id goes in)."""
    head = len(json.dumps({**template(kiosk), "code": ""}))
    return json.dumps({**template(kiosk), "code": "X" * (size - head)}).encode()


topic_kiosk = st.sampled_from((HOSTILE_KIOSK, *STRANGERS))
hostile = st.one_of(
    st.builds(
        lambda kiosk, name, value: Hostile("wrong_type", kiosk, {**template(kiosk), name: value}),
        topic_kiosk,
        # Not the event id: a payload with some other valid event id is just another scan
        # (see "bad_event_id").
        st.sampled_from([f for f in FIELDS if f != "event_id"]),
        json_values,
    ),
    st.builds(
        lambda kiosk, value: Hostile("bad_event_id", kiosk, {**template(kiosk), "event_id": value}),
        topic_kiosk,
        json_values.filter(lambda v: not (isinstance(v, str) and EVENT_ID_RE.fullmatch(v))),
    ),
    st.builds(
        lambda kiosk, v: Hostile("version", kiosk, {**template(kiosk), "v": v}),
        topic_kiosk,
        st.integers().filter(lambda n: n != 1)
        | st.booleans()
        | st.text(max_size=4)
        | st.none()
        | st.floats(),
    ),
    st.builds(
        lambda other: Hostile("mismatch", HOSTILE_KIOSK, template(other)),
        st.sampled_from((HONEST_KIOSK, *STRANGERS))
        | st.text(alphabet=ID_CHARS, max_size=31).map(lambda tail: f"K{tail}"),
    ),
    st.builds(
        lambda kiosk, code: Hostile("qr_text", kiosk, template(kiosk, code)),
        topic_kiosk,
        st.text(max_size=400)
        | st.binary(max_size=300).map(lambda b: b.decode("latin-1"))
        | st.builds(
            lambda kind, kid, rest: f"CS1.{kind}.K{kid}.{rest}",
            st.sampled_from("LPE"),
            st.integers(0, 9),
            st.text(alphabet=CODE_CHARS, max_size=80),
        ),
    ),
    st.builds(
        lambda kiosk, at, naive: Hostile(
            "timestamp",
            kiosk,
            {
                **template(kiosk),
                "scanned_at": at.replace(tzinfo=None).isoformat() if naive else at.isoformat(),
            },
        ),
        topic_kiosk,
        EPOCHS.map(lambda seconds: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)),
        st.booleans(),
    ),
    st.builds(
        lambda kiosk, size, raw: Hostile(
            "oversized", kiosk, b"\xff" * size if raw else json_of_size(kiosk, size)
        ),
        topic_kiosk,
        # Over central's parse limit yet under the broker's packet limit: anything bigger
        # never reaches central, the broker drops its sender (test_oversized_input.py).
        st.integers(MAX_PAYLOAD_BYTES + 1, MAX_PAYLOAD_BYTES + 64),
        st.booleans(),
    ),
    st.builds(
        lambda kiosk, raw: Hostile("not_json", kiosk, raw), topic_kiosk, st.binary(max_size=200)
    ),
    st.builds(
        lambda kiosk, depth, inside: Hostile(
            "nesting",
            kiosk,
            (
                json.dumps({**template(kiosk), "code": "@NEST@"}).replace(
                    '"@NEST@"', "[" * depth + "]" * depth
                )
                if inside
                else "[" * depth
            ).encode(),
        ),
        topic_kiosk,
        st.integers(100, 2000),
        st.booleans(),
    ),
    st.builds(
        lambda kiosk, name, value: Hostile("extra_field", kiosk, {**template(kiosk), name: value}),
        topic_kiosk,
        st.text(min_size=1, max_size=10).filter(lambda n: n not in FIELDS),
        json_values,
    ),
    st.builds(
        lambda level: Hostile("bad_topic", level, template()),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
        | st.text(alphabet="ÄÖü!$&()*", min_size=1, max_size=8),
    ),
)


@functools.cache
def draw(count: int) -> list[Hostile]:
    """``count`` hostile payloads from Hypothesis (generation only: nothing to shrink here).

    Drawn once per run and replayed on each backend: drawing costs more than deciding.
    """
    drawn: list[Hostile] = []

    @settings(
        max_examples=count // PER_EXAMPLE,
        database=None,
        deadline=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(hostile, min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def collect(batch: list[Hostile]) -> None:
        drawn.extend(batch)

    collect()
    return drawn[:count]


def finish(item: Hostile, event_id: str, drill: str) -> bytes:
    """The payload's bytes with its unique event id and the drill's label filled in."""
    if isinstance(item.body, bytes):
        return item.body.replace(EVENT_ID.encode(), event_id.encode()).replace(
            DRILL_LABEL.encode(), drill.encode()
        )
    body = {
        key: (event_id if value == EVENT_ID else drill if value == DRILL_LABEL else value)
        for key, value in item.body.items()
    }
    return json.dumps(body).encode()


async def scan_audit_counts(central: RunningCentral) -> Counter[str]:
    """Audit rows by action, read straight from the database."""
    store: SqliteStore | PostgresStore
    settings_ = central.settings
    if settings_.database == "postgres":
        assert settings_.postgres_dsn is not None
        store = await PostgresStore(
            settings_.postgres_dsn.get_secret_value(), min_size=1, max_size=1
        ).open()
    else:
        store = await SqliteStore(settings_.sqlite_file).open()
    try:
        rows = await query(store, "SELECT action, count(*) FROM qr_audit_log GROUP BY action")
    finally:
        await store.close()
    return Counter({str(action): int(n) for action, n in rows})


@pytest.mark.slow
async def test_hostile_payloads_by_the_ten_thousand_are_refused_and_honest_scans_still_work(
    central: RunningCentral, probe: Probe
) -> None:
    started = time.monotonic()
    admin = central.admin
    await seed_library(admin)
    drill = (await admin.get("/items/DRILL-01/label")).json()["code"]
    rake = (await admin.get("/items/RAKE-01/label")).json()["code"]
    count = ON_BACKEND[central.settings.database]
    drawn = (await asyncio.to_thread(draw, HOSTILE))[:count]
    assert {h.kind for h in drawn} >= BROKEN | {"wrong_type", "qr_text", "timestamp", "bad_topic"}
    cycles = count // 200
    passes = [
        (await admin.post("/members/M-1002/passes", json={})).json()["code"] for _ in range(cycles)
    ]

    verdicts: dict[str, tuple[str, Verdict]] = {}
    probe.subscribe(topics.VERDICT_FILTER)
    honest: list[tuple[str, Reason]] = []
    hostile_ids: dict[str, Hostile] = {}
    sent = 0
    for n, item in enumerate(drawn):
        event_id = f"fuzz-{n:08d}"
        hostile_ids[event_id] = item
        topic = f"{topics.ROOT}/kiosk/{item.kiosk}/scan"
        probe.client.publish(topic, finish(item, event_id, drill), qos=1)
        if n % 200 == 199:
            # One honest walk-up between every 200 hostile payloads.
            code = passes[sent]
            sent += 1
            for event, reason in (
                (scan(HONEST_KIOSK, code), Reason.SESSION_OPENED),
                (scan(HONEST_KIOSK, rake), Reason.CHECKED_OUT),
                (
                    SessionDone(
                        event_id=f"done-{n:08d}",
                        kiosk_id=HONEST_KIOSK,
                        scanned_at=datetime.now(UTC),
                    ),
                    Reason.SESSION_CLOSED,
                ),
                (scan(HONEST_KIOSK, rake), Reason.RETURNED),
            ):
                probe.client.publish(topics.scan(HONEST_KIOSK), encode(event), qos=1)
                honest.append((event.event_id, reason))
        if n % 1000 == 999:
            await asyncio.sleep(0)  # let central's loop breathe between bursts

    def collect_until_settled() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                message = probe.next(1.0, topic_suffix="/verdict")
            except TimeoutError:
                return
            verdict = Verdict.model_validate_json(message.payload)
            verdicts[verdict.event_id] = (message.topic, verdict)
        raise AssertionError("verdicts kept coming for 90 s")

    # Collect verdicts until central has decided everything: every honest verdict in, the
    # queue empty, and the dropped messages' aggregated audit rows written.
    deadline = time.monotonic() + 120
    while True:
        await asyncio.to_thread(collect_until_settled)
        audit = await scan_audit_counts(central)
        honest_done = all(event_id in verdicts for event_id, _ in honest)
        depth = (await admin.get("/stats")).json()["queue_depth"]
        if honest_done and depth == 0 and audit["scan.dropped"] > 0:
            break
        assert time.monotonic() < deadline, (audit["scan.dropped"], honest_done, depth)

    # Every honest scan got exactly its verdict, in the honest kiosk's own topic.
    for event_id, reason in honest:
        topic, verdict = verdicts[event_id]
        assert (topic, verdict.reason) == (topics.verdict(HONEST_KIOSK), reason), event_id
    # Every hostile payload that was answered was refused, and only to its own kiosk.
    kinds_answered: Counter[str] = Counter()
    for event_id, item in hostile_ids.items():
        if event_id not in verdicts:
            continue
        topic, verdict = verdicts[event_id]
        kinds_answered[item.kind] += 1
        assert not verdict.accepted, (item, verdict)
        assert topic == topics.verdict(item.kiosk), (item, topic)
        if item.kind in BROKEN:
            # Refused from memory (MALFORMED), or dropped early from a blocked kiosk.
            assert verdict.reason in {Reason.MALFORMED, Reason.KIOSK_BLOCKED}, (item, verdict)
    assert kinds_answered["mismatch"] == 0  # never answered on behalf of another kiosk
    assert kinds_answered["bad_topic"] == 0

    # Every hostile payload was either decided (and audited like any scan) or dropped and
    # counted; dropped ones cost an aggregated audit row per kiosk per window, not one each.
    metrics = await scrape(admin)
    dropped_metric = sum(v for (name, _), v in metrics.items() if name == "qr_scans_dropped_total")
    decided_rows = sum(
        n for action, n in audit.items() if action.startswith("scan.") and action != "scan.dropped"
    )
    assert dropped_metric + decided_rows - len(honest) == count
    assert 0 < audit["scan.dropped"] < count / 100
    stats = (await admin.get("/stats")).json()["counts"]
    assert stats.get("fault", 0) == 0
    assert stats.get("conflict", 0) == 0
    assert stats.get("dead_letter", 0) == 0  # the contract refused everything it had to
    health = await admin.get("/health")
    assert (health.status_code, health.json()["status"]) == (200, "ok")
    print(f"{count} hostile + {len(honest)} honest in {time.monotonic() - started:.1f} s")
