"""Fleet simulator: thousands of kiosks against the real Mosquitto and real centrals, with faults.

    python -m bench.fleet --kiosks 10000 --procs 2 --kiosks-per-shelf 10000 --minutes 10 \
        --walkups 1 --faults end:broker-restart --out docs/fleet-hold
    python -m bench.fleet --kiosks 2000 --kiosks-per-shelf 10 --backend postgres \
        --minutes 10 --walkups 10 \
        --faults 120:broker-restart,240:central-kill,330:central2-start,450:central2-stop

Kiosks are simulated by ``bench/fleet_worker.py`` (one MQTT session each, the contract in
``broker/``, the transport in ``broker/transport.py``), split over ``--procs`` processes.
Central runs as its own process(es) on SQLite or PostgreSQL; codes are real signed codes
from central's key ring. Loopback only; every run is bounded by ``--minutes``. The run
ends with the outboxes drained, each kiosk's availability compared with central's, and the
invariants counted in the database (``testkit/consistency.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import pwd
import queue
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.fleet_report import plot, table
from bench.fleet_run import Run
from bench.fleet_worker import WorkerPlan, raise_fd_limit, worker_main
from bench.load import _database, _drop
from broker import topics
from broker.local import LocalBroker, free_port
from broker.messages import Availability
from central.keys import load_key_ring
from central.settings import CentralSettings
from central.storage.postgres import PostgresStore
from central.storage.sqlite import SqliteStore
from central.tokens import TokenSigner, new_id
from testkit.consistency import consistency, violations
from testkit.probe import Probe
from testkit.processes import CentralProcess
from testkit.security import LIMITS_OFF

# Mosquitto's own default is unlimited; say so, so the bound is the open-files limit.
BROKER_EXTRA = "max_connections -1"


@dataclass(frozen=True)
class Layout:
    """How the simulated city is laid out."""

    kiosks: int
    kiosks_per_shelf: int
    items_per_shelf: int
    passes: int


@dataclass
class Seeded:
    """The library central holds: kiosks with their shelf, labels per shelf, pass codes."""

    kiosks: list[tuple[str, str]]
    shelf_labels: dict[str, dict[str, str]]
    passes: list[str]


async def seed(settings: CentralSettings, layout: Layout) -> Seeded:
    """Create the schema and the library straight in the store, before central starts."""
    signer = TokenSigner(load_key_ring(settings.keys_path, create=True))
    store: SqliteStore | PostgresStore
    if settings.database == "postgres":
        assert settings.postgres_dsn is not None
        store = await PostgresStore(settings.postgres_dsn.get_secret_value()).open()
    else:
        store = await SqliteStore(settings.sqlite_file).open()
    now = datetime.now(UTC)
    try:
        await store.migrate()
        shelves = max(1, -(-layout.kiosks // layout.kiosks_per_shelf))
        shelf_labels: dict[str, dict[str, str]] = {}
        for s in range(shelves):
            shelf_id = f"SHELF-{s:05d}"
            await store.add_shelf(shelf_id, shelf_id, now, "fleet")
            shelf_labels[shelf_id] = {}
            for i in range(layout.items_per_shelf):
                item_id = f"ITEM-{s:05d}-{i:02d}"
                await store.add_item(item_id, shelf_id, item_id, now, "fleet")
                shelf_labels[shelf_id][item_id] = signer.label(item_id, 1)
        kiosks = []
        for k in range(layout.kiosks):
            kiosk_id, shelf_id = f"KIOSK-{k:05d}", f"SHELF-{k // layout.kiosks_per_shelf:05d}"
            await store.add_kiosk(kiosk_id, shelf_id, now, "fleet", session_timeout_s=120)
            kiosks.append((kiosk_id, shelf_id))
        passes = []
        members = max(1, layout.passes // 20)
        for m in range(members):
            await store.add_member(f"M-{m:05d}", f"Member {m}", now, "fleet", checkout_limit=1000)
        expires = now + timedelta(hours=12)
        for p in range(layout.passes):
            pass_id, member_id = new_id(), f"M-{p % members:05d}"
            await store.issue_pass(pass_id, member_id, now, expires, "fleet")
            passes.append(signer.member_pass(pass_id, member_id, expires))
        return Seeded(kiosks, shelf_labels, passes)
    finally:
        await store.close()


def broker_dir(root: Path) -> Path:
    """A data dir Mosquitto can write its persistence file into.

    Started as root, mosquitto drops to the ``mosquitto`` user; a root-owned 0700 temp dir
    then makes every autosave fail ("Permission denied") and a restart comes back with no
    sessions and no retained messages. The restart scenarios need the real thing.
    """
    path = root / "broker"
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError, LookupError):
            pwd.getpwnam("mosquitto")
            root.chmod(0o755)
            shutil.chown(path, "mosquitto", "mosquitto")
    return path


def read_credentials(path: Path | None) -> dict[str, tuple[str, str]]:
    """``kiosk_id,username,password`` lines (per-kiosk broker logins), or none."""
    if path is None:
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            kiosk_id, user, password = line.strip().split(",", 2)
            out[kiosk_id] = (user, password)
    return out


class Fleet:
    """The coordinator's handle on the worker processes and everything they reported."""

    def __init__(
        self,
        port: int,
        seeded: Seeded,
        *,
        procs: int,
        walkups_per_s: float,
        seed_value: int = 1,
        credentials: dict[str, tuple[str, str]] | None = None,
        client: str = "raw",
    ) -> None:
        self.size = len(seeded.kiosks)
        self.per_shelf = Counter(shelf for _k, shelf in seeded.kiosks)
        ctx = multiprocessing.get_context("spawn")
        self.reports: Queue[Any] = ctx.Queue()
        self.commands: list[Queue[Any]] = []
        self.processes: list[BaseProcess] = []
        self.latest: dict[int, dict[str, Any]] = {}
        self.finals: dict[int, dict[str, Any]] = {}
        self.checked: dict[int, list[tuple[str, str, int, int]]] = {}
        self.verdicts: list[tuple[float, float]] = []  # (reported at, ms)
        self.changes: dict[str, list[Any]] = {}  # key -> [changed_at, Counter(ms)]
        for n in range(procs):
            kiosks = seeded.kiosks[n::procs]
            shelves = {shelf for _k, shelf in kiosks}
            plan = WorkerPlan(
                index=n,
                port=port,
                kiosks=kiosks,
                shelf_labels={s: seeded.shelf_labels[s] for s in shelves},
                passes=seeded.passes[n::procs],
                walkups_per_s=walkups_per_s / procs,
                seed=seed_value * 1000 + n,
                credentials={k: v for k, v in (credentials or {}).items() if k in dict(kiosks)},
                client=client,
            )
            commands: Queue[Any] = ctx.Queue()
            self.commands.append(commands)
            self.processes.append(
                ctx.Process(
                    target=worker_main, args=(plan, self.reports, commands), name=f"fleet-{n}"
                )
            )

    def start(self) -> Fleet:
        for process in self.processes:
            process.start()
        return self

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def pump(self) -> None:
        """Take in everything the workers reported so far."""
        while True:
            try:
                kind, index, body = self.reports.get_nowait()
            except queue.Empty:
                return
            if kind == "checked":
                self.checked[index] = body
                continue
            if kind == "final":
                self.finals[index] = body
            self.latest[index] = body
            self.verdicts.extend((body["at"], ms) for ms in body["verdict_ms"])
            for key, (changed_at, hist) in body["changes"].items():
                record = self.changes.setdefault(key, [changed_at, Counter()])
                record[1].update({int(ms): n for ms, n in hist.items()})

    def totals(self) -> dict[str, int]:
        """Fleet-wide counters from each worker's newest report."""
        keys = ("kiosks", "connected", "synced", "connects", "drops", "outbox", "sent")
        out = {k: sum(int(r[k]) for r in self.latest.values()) for k in keys}
        out["answered"] = sum(int(r["answered"]) for r in self.latest.values())
        out["reported_at"] = int(min((r["at"] for r in self.latest.values()), default=0))
        return out

    def fresh_since(self, moment: float) -> bool:
        return len(self.latest) == len(self.processes) and all(
            r["at"] > moment for r in self.latest.values()
        )

    async def until(
        self, condition: Callable[[dict[str, int]], bool], *, since: float, within: float
    ) -> float | None:
        """Seconds from ``since`` until ``condition(totals)`` holds on fresh reports."""
        deadline = time.time() + within
        while time.time() < deadline:
            self.pump()
            if self.fresh_since(since) and condition(self.totals()):
                return float(max(r["at"] for r in self.latest.values())) - since
            await asyncio.sleep(0.1)
        return None

    def all_back(self, t: dict[str, int]) -> bool:
        return t["connected"] == self.size and t["synced"] == self.size and t["outbox"] == 0

    async def command(self, *command: Any, collect: dict[int, Any], within: float = 60) -> None:
        collect.clear()
        for commands in self.commands:
            commands.put(command)
        deadline = time.time() + within
        while len(collect) < len(self.processes) and time.time() < deadline:
            self.pump()
            await asyncio.sleep(0.1)

    async def stale(self, truth: dict[str, int]) -> list[tuple[str, str, int, int]]:
        """(kiosk, item, its seq, central's seq) wherever a kiosk differs from ``truth``."""
        await self.command("check", truth, collect=self.checked)
        return [row for rows in self.checked.values() for row in rows]

    async def stop(self) -> dict[str, Any]:
        await self.command("stop", collect=self.finals)
        for process in self.processes:
            await asyncio.to_thread(process.join, 20)
            if process.is_alive():
                process.kill()
        self.pump()
        reasons: Counter[str] = Counter()
        for final in self.finals.values():
            reasons.update(final["reasons"])
        return {
            "reasons": dict(reasons),
            "unanswered": [e for f in self.finals.values() for e in f["unanswered"]],
            "repeated_verdicts": sum(f["repeated_verdicts"] for f in self.finals.values()),
            "bad_messages": sum(f["bad_messages"] for f in self.finals.values()),
            "skipped_offline": sum(f["skipped_offline"] for f in self.finals.values()),
            "sent": sum(f["sent"] for f in self.finals.values()),
        }

    def kill(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in the unit given."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    if len(ordered) == 1:
        v = ordered[0]
        return {"p50": v, "p95": v, "p99": v, "max": v}
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": ordered[-1]}


def hist_percentiles(hist: Counter[int]) -> dict[str, float]:
    """p50/p99/max of a histogram in whole milliseconds."""
    total = sum(hist.values())
    out: dict[str, float] = {}
    if not total:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    for name, share in (("p50", 0.5), ("p99", 0.99)):
        seen = 0
        for ms in sorted(hist):
            seen += hist[ms]
            if seen >= share * total:
                out[name] = float(ms)
                break
    out["max"] = float(max(hist))
    return out


class Resources:
    """CPU and memory of the broker, the centrals and the simulator, once a second."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def sample(self, groups: dict[str, list[int]]) -> dict[str, dict[str, float]]:
        out = {}
        for name, pids in groups.items():
            cpu = rss = 0.0
            for pid in pids:
                try:
                    proc = self._procs.get(pid)
                    if proc is None:
                        proc = self._procs[pid] = psutil.Process(pid)
                        proc.cpu_percent(None)  # the first reading only starts the clock
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss / 2**20
                except psutil.Error:
                    self._procs.pop(pid, None)
            out[name] = {"cpu": cpu, "rss_mb": rss}
        return out


def parse_faults(text: str, minutes: float) -> list[tuple[float, str]]:
    """``120:broker-restart,end:broker-restart`` -> [(seconds into the run, action)]."""
    out = []
    for part in filter(None, text.split(",")):
        when, action = part.split(":", 1)
        if action not in FAULTS:
            raise SystemExit(f"unknown fault {action!r}; one of {sorted(FAULTS)}")
        out.append((minutes * 60 if when == "end" else float(when), action))
    return sorted(out)


FAULTS = ("broker-restart", "central-kill", "central2-start", "central2-stop")


class Scenario:
    """Broker, centrals and fleet of one run, and the faults played on them."""

    def __init__(self, run: Run, broker: LocalBroker, settings: CentralSettings) -> None:
        self.run = run
        self.broker = broker
        self.settings = settings
        self.centrals: dict[str, CentralProcess] = {}
        self.fleet: Fleet | None = None
        self.resources = Resources()

    def pids(self) -> dict[str, list[int]]:
        central = [
            c.process.pid
            for c in self.centrals.values()
            if c.process is not None and c.process.poll() is None
        ]
        broker = self.broker.process
        return {
            "broker": [broker.pid] if broker is not None and broker.poll() is None else [],
            "central": central,
            "simulator": self.fleet.pids if self.fleet else [],
        }

    async def fault(self, action: str) -> None:
        assert self.fleet is not None
        t0 = time.time()
        record: dict[str, Any] = {"action": action, "at": t0 - self.run.started}
        self.run.faults.append(record)
        if action == "broker-restart":
            await asyncio.to_thread(self.broker.stop)
            await asyncio.to_thread(self.broker.start)
            listening = time.time()
            record["broker_down_s"] = listening - t0
            back = await self.fleet.until(self.fleet.all_back, since=listening, within=120)
            record["all_back_after_listening_s"] = back
            record["all_back_after_stop_s"] = None if back is None else back + listening - t0
        elif action == "central-kill":
            victim = self.centrals["central-1"]
            await asyncio.to_thread(victim.kill)
            await asyncio.to_thread(victim.start)  # as systemd's Restart=always would
            record["central_down_s"] = time.time() - t0
        elif action == "central2-start":
            second = CentralProcess(
                self.settings.model_copy(
                    update={"instance_id": "fleet-central-2", "admin_port": free_port()}
                )
            )
            await asyncio.to_thread(second.start)
            self.centrals["central-2"] = second
        elif action == "central2-stop":
            second = self.centrals.pop("central-2")
            await asyncio.to_thread(second.stop)
        record["done_s"] = time.time() - t0

    def sample(self) -> None:
        assert self.fleet is not None
        self.fleet.pump()
        row: dict[str, Any] = {"t": time.time() - self.run.started, **self.fleet.totals()}
        row["resources"] = self.resources.sample(self.pids())
        row["load1"] = os.getloadavg()[0]
        self.run.timeline.append(row)
        if len(self.run.timeline) % 10 == 1:
            print(  # progress for whoever watches a long run
                f"t={row['t']:.0f}s connected={row['connected']} synced={row['synced']}"
                f" drops={row['drops']} outbox={row['outbox']} sent={row['sent']}"
                f" load={row['load1']:.1f} {row['resources']}",
                file=sys.stderr,
                flush=True,
            )


def retained_seqs(port: int, within: float = 3.0) -> dict[str, int]:
    """The broker's retained availability copies: item id -> seq."""
    probe = Probe(port, client_id="fleet-retained-probe")
    try:
        probe.subscribe(topics.AVAILABILITY_FILTER)
        out: dict[str, int] = {}
        with contextlib.suppress(TimeoutError):
            while True:
                message = probe.next(within)
                availability = Availability.model_validate_json(message.payload)
                out[availability.item_id] = availability.seq
        return out
    finally:
        probe.close()


async def truth_from_central(central: CentralProcess) -> dict[str, int]:
    """Central's current availability: item id -> seq."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{central.settings.admin_port}",
        headers={"Authorization": f"Bearer {central.token()}"},
        timeout=30,
    ) as admin:
        items = (await admin.get("/items")).json()
    return {item["item_id"]: int(item["seq"]) for item in items}


async def play(run: Run) -> None:  # noqa: PLR0915 - one scenario, read top to bottom
    """Run one scenario from an empty broker and database to a checked summary."""
    args = run.args
    fds = raise_fd_limit()
    root = Path(tempfile.mkdtemp(prefix="cs-fleet-"))
    dsn = await _database(args.backend)
    broker = LocalBroker(broker_dir(root), extra_config=BROKER_EXTRA).start()
    settings = CentralSettings(
        instance_id="fleet-central-1",
        data_dir=root / "central",
        database=args.backend,
        postgres_dsn=dsn,
        mqtt_port=broker.port,
        admin_port=free_port(),
        # The walk-up mix sends 10 % forged labels on purpose: with central's defences on,
        # the circuit breaker (rightly) turns checkout off within minutes and the run
        # measures refusals. --defences keeps them on.
        **({} if args.defences else LIMITS_OFF),
    )
    scenario = Scenario(run, broker, settings)
    layout = Layout(
        args.kiosks,
        args.kiosks_per_shelf,
        args.items_per_shelf,
        passes=int(args.walkups * args.minutes * 60 * 0.6) + 200,
    )
    try:
        t = time.time()
        seeded = await seed(settings, layout)
        run.summary["seed_s"] = time.time() - t
        run.summary["fd_limit"] = fds
        scenario.centrals["central-1"] = await asyncio.to_thread(CentralProcess(settings).start)
        fleet = scenario.fleet = Fleet(
            broker.port,
            seeded,
            procs=args.procs,
            walkups_per_s=args.walkups,
            credentials=read_credentials(args.credentials),
            client=args.client,
        ).start()
        t = time.time()
        ramp = await fleet.until(fleet.all_back, since=t, within=args.kiosks / 100 + 60)
        run.summary["ramp_s"] = ramp
        if ramp is None:
            raise RuntimeError(f"fleet did not come up: {fleet.totals()}")
        run.started = time.time()
        run.summary["connects_at_start"] = fleet.totals()["connects"]
        faults = parse_faults(args.faults, args.minutes)
        pending: list[asyncio.Task[None]] = []
        while (elapsed := time.time() - run.started) < args.minutes * 60:
            while faults and faults[0][0] <= elapsed:
                _at, action = faults.pop(0)
                pending.append(asyncio.create_task(scenario.fault(action)))
            scenario.sample()
            await asyncio.sleep(1.0)
        run.summary["steady_end"] = time.time() - run.started
        for _at, action in faults:  # "end:" faults: after the steady part, walk-ups going on
            pending.append(asyncio.create_task(scenario.fault(action)))
        while not all(task.done() for task in pending):
            scenario.sample()
            await asyncio.sleep(1.0)
        for task in pending:
            task.result()
        # Members stop walking up; every outbox must drain.
        for commands in fleet.commands:
            commands.put(("pause",))
        drained = await fleet.until(
            lambda t: t["outbox"] == 0 and t["connected"] == fleet.size,
            since=time.time(),
            within=60,
        )
        scenario.sample()
        run.summary["drain_s"] = drained
        central = scenario.centrals["central-1"]
        await asyncio.sleep(1.0)  # the last availability publishes land
        truth = await truth_from_central(central)
        stale = await fleet.stale(truth)
        run.summary["stale_kiosks"] = len({kiosk for kiosk, *_ in stale})
        run.summary["stale_examples"] = stale[:10]
        retained = await asyncio.to_thread(retained_seqs, broker.port)
        run.summary["stale_retained"] = sorted(
            (item, retained.get(item, -1), seq)
            for item, seq in truth.items()
            if retained.get(item, -1) != seq
        )[:20]
        run.summary["totals"] = fleet.totals()
        run.summary["final"] = await fleet.stop()
        for process in scenario.centrals.values():
            await asyncio.to_thread(process.stop)
        run.summary["checks"] = await consistency(settings)
        summarise(run, fleet)
    finally:
        if scenario.fleet is not None:
            scenario.fleet.kill()
        for process in scenario.centrals.values():
            await asyncio.to_thread(process.stop)
        broker.stop()
        await _drop(dsn)
        shutil.rmtree(root, ignore_errors=True)


def summarise(run: Run, fleet: Fleet) -> None:
    """The headline numbers from the timeline and the workers' reports."""
    s = run.summary
    steady_end = run.started + s["steady_end"]
    steady = [ms for at, ms in fleet.verdicts if run.started <= at < steady_end]
    s["verdict_ms"] = percentiles(steady)
    s["verdict_ms_all"] = percentiles([ms for _at, ms in fleet.verdicts])
    quiet = [
        (run.started + f["at"], run.started + f["at"] + (f.get("done_s") or 0) + 30)
        for f in run.faults
    ]
    # Outside every fault and the 30 s after it: what a member sees on an ordinary day.
    s["verdict_ms_quiet"] = percentiles(
        [
            ms
            for at, ms in fleet.verdicts
            if run.started <= at < steady_end and not any(a <= at <= b for a, b in quiet)
        ]
    )
    fault_windows = [
        (
            run.started + f["at"],
            run.started + f["at"] + (f.get("done_s") or 0) + 5,
        )
        for f in run.faults
    ]
    hist: Counter[int] = Counter()
    to_all = []
    first = []  # decided -> the first kiosk has it: central's part, and the broker's first write
    short = 0
    for key, (changed_at, counts) in fleet.changes.items():
        if not run.started <= changed_at < steady_end:
            continue
        if any(a <= changed_at <= b for a, b in fault_windows):
            continue
        hist.update(counts)
        to_all.append(float(max(counts)))
        first.append(float(min(counts)))
        # Every kiosk of the item's shelf should have heard it (ITEM-<shelf>-<n>#<seq>).
        shelf = f"SHELF-{key.split('-')[1]}"
        short += sum(counts.values()) < fleet.per_shelf[shelf]
    s["fanout_changes"] = len(to_all)
    s["fanout_deliveries"] = sum(hist.values())
    s["fanout_receivers_per_change"] = max(fleet.per_shelf.values())
    s["fanout_ms"] = hist_percentiles(hist)
    s["fanout_to_all_ms"] = percentiles(to_all)
    s["fanout_first_ms"] = percentiles(first)
    s["fanout_changes_short"] = short
    s["latency_series"] = series(run, fleet)
    drops_outside = 0
    previous = None
    for row in run.timeline:
        at = run.started + row["t"]
        if (
            previous is not None
            and row["drops"] > previous
            and not any(a <= at <= b + 30 for a, b in fault_windows)
        ):
            drops_outside += row["drops"] - previous
        previous = row["drops"]
    s["drops_outside_faults"] = drops_outside
    checks = s["checks"]
    s["violations"] = violations(checks)
    s["events_sent"] = s["final"]["sent"]
    s["events_decided"] = checks["events decided"]
    s["lost"] = len(s["final"]["unanswered"]) + max(0, s["events_sent"] - s["events_decided"])


def series(run: Run, fleet: Fleet, bucket_s: float = 10.0) -> dict[str, list[float]]:
    """Verdict p50/p99 and availability p99 per ``bucket_s`` of the run, for the plot."""
    verdicts: dict[int, list[float]] = {}
    for at, ms in fleet.verdicts:
        verdicts.setdefault(int((at - run.started) // bucket_s), []).append(ms)
    fanout: dict[int, Counter[int]] = {}
    for changed_at, counts in fleet.changes.values():
        fanout.setdefault(int((changed_at - run.started) // bucket_s), Counter()).update(counts)
    out: dict[str, list[float]] = {"t": [], "verdict_p50": [], "verdict_p99": [], "fanout_p99": []}
    for b in sorted(set(verdicts) | set(fanout)):
        if b < 0:
            continue
        v = percentiles(verdicts.get(b, []))
        out["t"].append(b * bucket_s)
        out["verdict_p50"].append(v["p50"])
        out["verdict_p99"].append(v["p99"])
        out["fanout_p99"].append(hist_percentiles(fanout.get(b, Counter()))["p99"])
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The simulator's options (also how a test asks for a short run)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kiosks", type=int, default=1000)
    parser.add_argument("--procs", type=int, default=2, help="simulator processes")
    parser.add_argument("--kiosks-per-shelf", type=int, default=10)
    parser.add_argument("--items-per-shelf", type=int, default=8)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--minutes", type=float, default=1.0, help="steady part (bounded)")
    parser.add_argument("--walkups", type=float, default=5.0, help="member walk-ups per second")
    parser.add_argument(
        "--faults", default="", help=f"comma list of <seconds|end>:<{'|'.join(FAULTS)}>"
    )
    parser.add_argument("--credentials", type=Path, help="kiosk_id,username,password lines")
    parser.add_argument(
        "--client",
        choices=["raw", "paho"],
        default="raw",
        help="each simulated kiosk's MQTT client: raw packets (bench/fleet_mqtt.py, lean)"
        " or paho via broker/transport.py LoopClient (what real kiosks run; ~10x the CPU)",
    )
    parser.add_argument(
        "--defences",
        action="store_true",
        help="keep central's rate limits, kiosk blocks and circuit breaker on",
    )
    parser.add_argument("--out", type=Path, help="write <out>.md, <out>.json and <out>.png")
    args = parser.parse_args(argv)
    if args.minutes > 60:
        parser.error("--minutes is bounded at 60")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run one bounded scenario and write its table, timeline and plot."""
    args = parse_args(argv)
    run = Run(args)
    asyncio.run(play(run))
    command = "python -m bench.fleet " + " ".join(sys.argv[1:] if argv is None else argv)
    text = table(run, command)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text + "\n")
        args.out.with_suffix(".json").write_text(
            json.dumps(
                {"summary": run.summary, "faults": run.faults, "timeline": run.timeline},
                default=str,
            )
        )
        with contextlib.suppress(ImportError):
            plot(run, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
