"""Plays many kiosks through the real broker against real central processes and measures.

    python -m bench.load --backend sqlite --centrals 1 --mode throughput --seconds 30
    python -m bench.load --backend postgres --centrals 2 --mode latency --rate 1000
    python -m bench.load --backend sqlite --mode invariants --attempts 1000000
    python -m bench.load --suite --out docs/bench-central.md     # the table in the docs

Scans are real signed codes on the real wire contract. Latency is measured here, from
the moment a scan is handed to the MQTT client to the moment its verdict arrives. Every
run ends with a consistency check straight over the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench import cost
from broker import topics
from broker.local import LocalBroker, free_port
from broker.messages import CodeScan, encode
from broker.transport import nodelay
from central.keys import load_key_ring
from central.settings import CentralSettings
from central.storage.postgres import PostgresStore
from central.storage.sqlite import SqliteStore
from central.tokens import TokenSigner, new_id
from testkit.consistency import consistency, violations
from testkit.processes import CentralProcess
from testkit.security import LIMITS_OFF

SESSION_KIOSKS = 32
RETURN_KIOSKS = 32
ITEMS = 2000
PG_ADMIN = "postgresql://cs_test:cs_test@127.0.0.1:5432/postgres"


@dataclass
class Library:
    """What the load plays with: kiosk ids, label codes, pass codes."""

    session_kiosks: list[str]
    return_kiosks: list[str]
    labels: list[str]
    passes: dict[str, str]


@dataclass
class Stats:
    """Send and receive times per event id, filled from two threads."""

    sent: dict[str, float] = field(default_factory=dict)
    received: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.done = threading.Condition(self.lock)

    @property
    def outstanding(self) -> int:
        return len(self.sent) - len(self.received)


class Player:
    """One MQTT connection that publishes for every simulated kiosk and hears every verdict."""

    def __init__(self, port: int, stats: Stats) -> None:
        self.stats = stats
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"load-{uuid.uuid4().hex[:6]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.max_inflight_messages_set(0)  # no client-side cap: the broker paces
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._verdict
        self.client.on_socket_open = lambda _c, _u, sock: nodelay(sock)
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topics.VERDICT_FILTER, qos=1)
        self.client.loop_start()
        time.sleep(0.2)

    def _verdict(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        now = time.perf_counter()
        data = json.loads(message.payload)
        with self.stats.lock:
            event_id = data["event_id"]
            if event_id not in self.stats.received:
                self.stats.received[event_id] = now
                self.stats.reasons[event_id] = data["reason"]
            self.stats.done.notify_all()

    def send(self, kiosk_id: str, code: str) -> None:
        event_id = uuid.uuid4().hex[:16]
        payload = encode(
            CodeScan(event_id=event_id, kiosk_id=kiosk_id, code=code, scanned_at=datetime.now(UTC))
        )
        with self.stats.lock:
            self.stats.sent[event_id] = time.perf_counter()
        self.client.publish(topics.scan(kiosk_id), payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def _seed(store: SqliteStore | PostgresStore, signer: TokenSigner) -> Library:
    now = datetime.now(UTC)
    await store.add_shelf("SHELF-A", "Bench", now, "bench")
    session_kiosks = [f"KIOSK-S{n:03d}" for n in range(SESSION_KIOSKS)]
    return_kiosks = [f"KIOSK-R{n:03d}" for n in range(RETURN_KIOSKS)]
    for kiosk_id in session_kiosks + return_kiosks:
        await store.add_kiosk(kiosk_id, "SHELF-A", now, "bench", session_timeout_s=3600)
    labels = []
    for n in range(ITEMS):
        item_id = f"ITEM-{n:05d}"
        await store.add_item(item_id, "SHELF-A", item_id, now, "bench")
        labels.append(signer.label(item_id, 1))
    passes = {}
    for n, kiosk_id in enumerate(session_kiosks):
        member_id = f"M-{n:04d}"
        await store.add_member(member_id, member_id, now, "bench", checkout_limit=100_000)
        pass_id = new_id()
        expires = now + timedelta(hours=6)
        await store.issue_pass(pass_id, member_id, now, expires, "bench")
        passes[kiosk_id] = signer.member_pass(pass_id, member_id, expires)
    return Library(session_kiosks, return_kiosks, labels, passes)


async def prepare(settings: CentralSettings) -> Library:
    """Create the schema and the library before central starts (fast, in bulk)."""
    signer = TokenSigner(load_key_ring(settings.keys_path, create=True))
    store: SqliteStore | PostgresStore
    if settings.database == "postgres":
        assert settings.postgres_dsn is not None
        store = await PostgresStore(settings.postgres_dsn.get_secret_value()).open()
    else:
        store = await SqliteStore(settings.sqlite_file).open()
    try:
        await store.migrate()
        return await _seed(store, signer)
    finally:
        await store.close()


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of ``values`` (seconds) in milliseconds."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49] * 1e3, "p95": q[94] * 1e3, "p99": q[98] * 1e3, "max": ordered[-1] * 1e3}


@dataclass
class Result:
    """One run's numbers."""

    label: str
    scans: int
    verdicts: int
    seconds: float
    latency_ms: dict[str, float]
    reasons: dict[str, int]
    checks: dict[str, int]
    cost: cost.Cost | None = None

    @property
    def rate(self) -> float:
        return self.verdicts / self.seconds if self.seconds else 0.0


def open_session(player: Player, library: Library) -> None:
    """Every session kiosk opens its (long) session first."""
    for kiosk_id, code in library.passes.items():
        player.send(kiosk_id, code)
    _wait_all(player.stats, 30)


def _wait_all(stats: Stats, within: float) -> None:
    deadline = time.monotonic() + within
    with stats.lock:
        while stats.outstanding > 0 and time.monotonic() < deadline:
            stats.done.wait(timeout=0.2)


def attempt(player: Player, library: Library, rng: random.Random, race_share: float) -> int:
    """One walk-up action; with probability ``race_share`` 2-8 kiosks race for one code."""
    label = rng.choice(library.labels)
    if rng.random() < race_share:
        kiosks = rng.sample(library.session_kiosks, rng.randint(2, 8))
        for kiosk_id in kiosks:
            player.send(kiosk_id, label)
        return len(kiosks)
    if rng.random() < 0.5:
        player.send(rng.choice(library.session_kiosks), label)
    else:
        player.send(rng.choice(library.return_kiosks), label)
    return 1


def closed_loop(
    player: Player,
    library: Library,
    *,
    window: int,
    seconds: float,
    attempts: int,
    race_share: float,
    seed: int,
) -> tuple[int, float]:
    """Keep ``window`` scans in flight until time or attempts run out; (scans, seconds)."""
    rng = random.Random(seed)
    stats = player.stats
    sent = 0
    start = time.perf_counter()
    while sent < attempts and time.perf_counter() - start < seconds:
        with stats.lock:
            while stats.outstanding >= window:
                stats.done.wait(timeout=1.0)
        sent += attempt(player, library, rng, race_share)
    _wait_all(stats, 60)
    return sent, time.perf_counter() - start


def open_loop(
    player: Player, library: Library, *, rate: float, seconds: float, seed: int
) -> tuple[int, float]:
    """Offer scans at ``rate`` per second regardless of answers; (scans, seconds)."""
    rng = random.Random(seed)
    sent = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            sent += attempt(player, library, rng, 0.0)
        time.sleep(0.0005)
    _wait_all(player.stats, 60)
    return sent, time.perf_counter() - start


async def _database(backend: str) -> str | None:
    if backend != "postgres":
        return None
    name = f"cs_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


async def _drop(dsn: str | None) -> None:
    if dsn is None:
        return
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


def run(
    backend: str,
    centrals: int,
    mode: str,
    *,
    seconds: float = 20,
    rate: float = 1000,
    attempts: int = 10**9,
    window: int = 256,
    race_share: float = 0.2,
    seed: int = 1,
) -> Result:
    """One configuration, from an empty broker and database to a checked result."""
    root = Path(tempfile.mkdtemp(prefix="cs-bench-"))
    dsn = asyncio.run(_database(backend))
    broker = LocalBroker(root / "broker").start()
    processes: list[CentralProcess] = []
    try:
        base = CentralSettings(
            instance_id="bench-central-0",
            data_dir=root / "central",
            database=backend,
            postgres_dsn=dsn,
            mqtt_port=broker.port,
            admin_port=free_port(),
            **LIMITS_OFF,
        )
        library = asyncio.run(prepare(base))
        for n in range(centrals):
            settings = base.model_copy(
                update={"instance_id": f"bench-central-{n}", "admin_port": free_port()}
            )
            processes.append(CentralProcess(settings).start())
        player = Player(broker.port, Stats())
        open_session(player, library)
        player.stats.sent.clear()
        player.stats.received.clear()
        player.stats.reasons.clear()
        before = cost.read(processes, dsn)
        if mode == "latency":
            scans, elapsed = open_loop(player, library, rate=rate, seconds=seconds, seed=seed)
        else:
            scans, elapsed = closed_loop(
                player,
                library,
                window=window,
                seconds=seconds,
                attempts=attempts,
                race_share=race_share if mode == "invariants" else 0.0,
                seed=seed,
            )
        player.close()
        spent = cost.between(before, cost.read(processes, dsn), len(player.stats.received))
        stats = player.stats
        latencies = [stats.received[e] - stats.sent[e] for e in stats.received if e in stats.sent]
        reasons: dict[str, int] = {}
        for reason in stats.reasons.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        for process in processes:
            process.stop()
        checks = asyncio.run(consistency(base))
        label = f"{backend}, {centrals} central{'s' if centrals > 1 else ''}, {mode}"
        return Result(
            label,
            scans,
            len(stats.received),
            elapsed,
            percentiles(latencies),
            reasons,
            checks,
            spent,
        )
    finally:
        for process in processes:
            process.stop()
        broker.stop()
        asyncio.run(_drop(dsn))
        shutil.rmtree(root, ignore_errors=True)


def report(results: list[Result]) -> str:
    """A Markdown table of results."""
    lines = [
        "| run | scans | verdicts | verdicts/s | p50 ms | p95 ms | p99 ms | max ms |"
        " invariant violations | CPU ms/scan central + PG | round trips/scan (batch) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lat = r.latency_ms
        lines.append(
            f"| {r.label} | {r.scans:,} | {r.verdicts:,} | {r.rate:,.0f} |"
            f" {lat['p50']:.1f} | {lat['p95']:.1f} | {lat['p99']:.1f} | {lat['max']:.0f} |"
            f" {violations(r.checks)} | {_cpu_cell(r.cost)} | {_trips_cell(r.cost)} |"
        )
    return "\n".join(lines)


def _cpu_cell(spent: cost.Cost | None) -> str:
    if spent is None:
        return "-"
    return f"{spent.total_ms:.2f} = {spent.central_ms:.2f} + {spent.postgres_ms:.2f}"


def _trips_cell(spent: cost.Cost | None) -> str:
    if spent is None or spent.round_trips is None or spent.batch is None:
        return "-"
    return f"{spent.round_trips:.2f} ({spent.batch:.0f})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one configuration or the standard suite."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--centrals", type=int, default=1)
    parser.add_argument(
        "--mode", choices=["throughput", "latency", "invariants"], default="throughput"
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=1000, help="offered scans/s (latency)")
    parser.add_argument(
        "--attempts", type=int, default=10**9, help="stop after this many scans (invariants)"
    )
    parser.add_argument("--window", type=int, default=256, help="scans in flight")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--suite", action="store_true", help="the standard table")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    if args.suite:
        results = [
            run("sqlite", 1, "throughput", seconds=args.seconds, window=args.window),
            run("sqlite", 1, "latency", seconds=args.seconds, rate=args.rate),
            run("postgres", 1, "throughput", seconds=args.seconds, window=args.window),
            run("postgres", 2, "throughput", seconds=args.seconds, window=args.window),
            run("postgres", 1, "latency", seconds=args.seconds, rate=args.rate),
        ]
    else:
        results = [
            run(
                args.backend,
                args.centrals,
                args.mode,
                seconds=args.seconds,
                rate=args.rate,
                attempts=args.attempts,
                window=args.window,
                seed=args.seed,
            )
        ]
    table = report(results)
    command = "python -m bench.load " + " ".join(sys.argv[1:] if argv is None else argv)
    text = f"{table}\n\nCommand: `{command}`\n"
    for r in results:
        text += f"\n{r.label}: reasons {dict(sorted(r.reasons.items()))}; checks {r.checks}"
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
