"""Honest kiosks under attack: a garbage flood and a forger, against central with its defences on.

    python -m bench.hostile --seconds 60 --baseline          # the bar's run, with its baseline
    python -m bench.hostile --seconds 30 --backend postgres
    python -m bench.hostile --seconds 30 --secure            # fleet broker: passwords, ACLs

One real Mosquitto (the development config, or the fleet config with ``--secure``) and one
real central process (``python -m central``) on SQLite or PostgreSQL, with the production
defaults for rate limits, the automatic block and the circuit breaker. Then, for
``--seconds``:

- ``--kiosks`` honest kiosks (50), each on its own connection, where members walk up every
  few seconds: a fresh pass, one or two labels, "done", or a return of items lent earlier
  (``bench/hostile_kiosks.py``);
- one kiosk flooding its scan topic with garbage at the broker's full rate, QoS 0 and 1,
  from a raw socket in a process of its own (``bench/flood.py``);
- one kiosk showing forged codes a few times a second: bad signatures, foreign QR text,
  and passes honest members have just used.

Measured for the honest kiosks only: verdict latency (event handed to the client → verdict
received), scans answered other than a member should get, passes that expired waiting,
scans never answered; and what the attackers were told, and when. ``--baseline`` first runs
the same honest load with no attackers, so the report shows the ratio. The bar: honest
p99 ≤ 100 ms and no honest pass expires waiting. Loopback only; the flood stops by itself.
Every run ends with the invariants counted over the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil

from bench import flood
from bench.hostile_kiosks import (
    GIVE_UP_S,
    PASS_LIFE,
    AttackerLog,
    Forger,
    HonestKiosk,
    KioskLink,
    Pace,
    Scan,
    Shelf,
    ShownPasses,
)
from bench.load import _database, _drop
from broker import auth
from broker.local import LocalBroker, free_port
from broker.messages import Reason
from central.keys import load_key_ring
from central.settings import CentralSettings
from central.storage.postgres import PostgresStore
from central.storage.rollout import FlagRow
from central.storage.sqlite import SqliteStore
from central.tokens import TokenSigner, new_id
from testkit.consistency import consistency, violations
from testkit.processes import CentralProcess, admin_client
from testkit.secure_broker import CENTRAL_USER, fleet_broker

SHELF_ID = "SHELF-HOSTILE"
FLOODER = "KIOSK-FLOOD"
FORGER = "KIOSK-FORGE"
ITEMS_PER_KIOSK = 40
BAR_P99_MS = 100.0
PASS_LIFE_S = PASS_LIFE.total_seconds()


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """Nearest-rank p50/p95/p99/max in milliseconds (inf stays inf: never answered)."""
    if not seconds:
        return dict.fromkeys(("p50", "p95", "p99", "max"), math.nan)
    ordered = sorted(seconds)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1e3

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": ordered[-1] * 1e3}


def _ms(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.1f}"


@dataclass
class Options:
    """One invocation's knobs."""

    kiosks: int = 50
    seconds: float = 60.0
    backend: str = "sqlite"
    secure: bool = False
    attackers: bool = True
    forge_rate: float = 3.0
    flood_max: int = 10_000_000
    pace: Pace = field(default_factory=Pace)
    give_up_s: float = GIVE_UP_S
    seed: int = 1


@dataclass
class Result:
    """One run's numbers, for the honest kiosks and for each attacker."""

    label: str
    options: Options
    scans: list[Scan]
    walkups: int
    seconds: float
    flood: flood.FloodReport | None = None
    forger: AttackerLog | None = None
    attack_started: float = 0.0  # wall clock
    started: float = 0.0  # perf_counter, when the walk-ups began
    breaker: FlagRow | None = None
    central_alive: bool = False
    peak_rss_mb: dict[str, float] = field(default_factory=dict)  # central, mosquitto
    ready_at_end: str = ""
    checks: dict[str, int] = field(default_factory=dict)
    # How often central decided a batch again (with a savepoint per event, or one event
    # per transaction) and what that found: a flood that could force it would move the
    # central off its fast path.
    fallbacks: dict[str, int] = field(default_factory=dict)

    @property
    def latency_ms(self) -> dict[str, float]:
        """p50/p95/p99/max of honest verdict latency; a scan never answered counts as inf."""
        return percentiles([math.inf if s.latency is None else s.latency for s in self.scans])

    @property
    def unanswered(self) -> int:
        """Honest events with no verdict within the member's patience (``give_up_s``)."""
        return sum(1 for s in self.scans if s.reason is None)

    @property
    def wrong(self) -> Counter[str]:
        """Honest events answered other than expected, by ``step: reason``."""
        return Counter(
            f"{s.step}: {s.reason.value}"
            for s in self.scans
            if s.reason is not None and s.reason is not s.expected
        )

    @property
    def expired_passes(self) -> int:
        """Honest passes that expired waiting: refused EXPIRED, or unanswered past their life."""
        patience = self.options.give_up_s
        return sum(
            1
            for s in self.scans
            if s.step == "pass"
            and (s.reason is Reason.EXPIRED or (s.reason is None and patience >= PASS_LIFE_S))
        )

    @property
    def resends(self) -> int:
        """Times an honest kiosk re-sent an unanswered event."""
        return sum(s.resends for s in self.scans)

    @property
    def meets_bar(self) -> bool:
        """Honest p99 ≤ 100 ms, no pass expired waiting, every scan answered."""
        p99 = self.latency_ms["p99"]
        return (
            not math.isnan(p99)
            and p99 <= BAR_P99_MS
            and self.expired_passes == 0
            and self.unanswered == 0
        )

    @property
    def correct(self) -> bool:
        """Every honest scan answered as a member should be answered; central still up."""
        return self.unanswered == 0 and not self.wrong and self.central_alive


@dataclass
class Library:
    """What the run plays with."""

    shelves: list[Shelf]
    forged_from: str  # a real label, whose MAC the forger spoils
    signer: TokenSigner


async def _seed(
    store: SqliteStore | PostgresStore,
    signer: TokenSigner,
    options: Options,
    accounts: dict[str, auth.Account],
) -> Library:
    now = datetime.now(UTC)
    await store.add_shelf(SHELF_ID, "Hostile bench", now, "bench")

    async def add_kiosk(kiosk_id: str) -> None:
        # On the fleet broker central owns the accounts: the database must name the same
        # users the broker was seeded with, or central's reconciliation would remove them.
        account = accounts.get(kiosk_id)
        if account is None:
            await store.add_kiosk(kiosk_id, SHELF_ID, now, "bench", session_timeout_s=60)
        else:
            await store.enrol_kiosk(kiosk_id, SHELF_ID, account.password_hash, now, "bench")

    for name, account in accounts.items():
        if account.role is auth.Role.CENTRAL:
            await store.set_central_account(name, account.password_hash, now, "bench")
    # Enough passes for a walk-up at every kiosk at the fastest pace, all run long.
    per_kiosk = math.ceil(options.seconds / (0.5 * options.pace.walkup_every_s)) + 2
    shelves = []
    for k in range(options.kiosks):
        kiosk_id = f"KIOSK-H{k:03d}"
        await add_kiosk(kiosk_id)
        labels = {}
        for n in range(ITEMS_PER_KIOSK):
            item_id = f"ITEM-{k:03d}-{n:03d}"
            await store.add_item(item_id, SHELF_ID, item_id, now, "bench")
            labels[item_id] = signer.label(item_id, 1)
        passes = []
        for n in range(per_kiosk):
            member_id = f"M-{k:03d}-{n:04d}"
            await store.add_member(member_id, member_id, now, "bench", checkout_limit=100)
            pass_id = new_id()
            # The stored pass lives long; the code shown carries the phone's 30 s expiry.
            await store.issue_pass(pass_id, member_id, now, now + timedelta(hours=6), "bench")
            passes.append((pass_id, member_id))
        shelves.append(Shelf(kiosk_id, labels, passes))
    for kiosk_id in (FLOODER, FORGER):
        await add_kiosk(kiosk_id)
    return Library(shelves, shelves[0].labels[next(iter(shelves[0].labels))], signer)


async def _store(settings: CentralSettings) -> SqliteStore | PostgresStore:
    if settings.database == "postgres":
        assert settings.postgres_dsn is not None
        return await PostgresStore(settings.postgres_dsn.get_secret_value()).open()
    return await SqliteStore(settings.sqlite_file).open()


async def prepare(
    settings: CentralSettings, options: Options, accounts: dict[str, auth.Account] | None = None
) -> Library:
    """The schema and the library, written before central starts."""
    signer = TokenSigner(load_key_ring(settings.keys_path, create=True))
    store = await _store(settings)
    try:
        await store.migrate()
        return await _seed(store, signer, options, accounts or {})
    finally:
        await store.close()


async def _flag(settings: CentralSettings) -> FlagRow:
    store = await _store(settings)
    try:
        return await store.get_flag()
    finally:
        await store.close()


@dataclass
class Broker:
    """The running broker and each kiosk's credentials on it (none on the dev broker)."""

    broker: LocalBroker
    passwords: dict[str, str]
    accounts: dict[str, auth.Account]

    def login(self, user: str) -> tuple[str | None, str | None]:
        """(username, password) for ``user``, or (None, None) on the dev broker."""
        if user not in self.passwords:
            return None, None
        return user, self.passwords[user]


@contextlib.contextmanager
def _broker(root: Path, options: Options) -> Iterator[Broker]:
    if not options.secure:
        with LocalBroker(root / "broker") as broker:
            yield Broker(broker, {}, {})
        return
    kiosks = {f"KIOSK-H{k:03d}": SHELF_ID for k in range(options.kiosks)}
    kiosks |= {FLOODER: SHELF_ID, FORGER: SHELF_ID}
    with fleet_broker(root / "fleet", kiosks) as fleet:
        yield Broker(fleet.broker, fleet.passwords, fleet.accounts)


def _central_state(central: CentralProcess) -> tuple[bool, str]:
    """Whether central runs and answers /health, and what /ready says."""
    assert central.process is not None
    if central.process.poll() is not None:
        return False, f"exited {central.process.returncode}"
    base = f"http://127.0.0.1:{central.settings.admin_port}"
    try:
        healthy = httpx.get(f"{base}/health", timeout=5).status_code == 200
        ready = httpx.get(f"{base}/ready", timeout=5)
    except httpx.HTTPError as exc:
        return False, type(exc).__name__
    return healthy, ready.text[:300]


_FALLBACKS = ("batch_careful", "batch_split", "batch_retry", "dead_letter", "conflict")


def _fallbacks(central: CentralProcess) -> dict[str, int]:
    """The consumer's counts of batches decided again, and of what made them fail."""
    try:
        with admin_client(central) as client:
            counts = client.get("/stats").json()["counts"]
    except (httpx.HTTPError, ValueError, KeyError):
        return {}
    return {name: int(counts.get(name, 0)) for name in _FALLBACKS}


class PeakMemory(threading.Thread):
    """Samples the resident memory of central and the broker once a second; keeps the peak."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(name="peak-memory", daemon=True)
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak_mb = dict.fromkeys(pids, 0.0)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            for name, process in self.processes.items():
                with contextlib.suppress(psutil.Error):
                    mb = process.memory_info().rss / 2**20
                    self.peak_mb[name] = max(self.peak_mb[name], mb)


def run(options: Options) -> Result:
    """One run from an empty broker and database to checked numbers."""
    root = Path(tempfile.mkdtemp(prefix="cs-hostile-"))
    dsn = asyncio.run(_database(options.backend))
    central: CentralProcess | None = None
    links: list[KioskLink] = []
    try:
        with _broker(root, options) as broker:
            user, password = broker.login(CENTRAL_USER)
            settings = CentralSettings(
                instance_id=CENTRAL_USER if options.secure else "hostile-central",
                data_dir=root / "central",
                database=options.backend,
                postgres_dsn=dsn,
                mqtt_port=broker.broker.port,
                mqtt_username=user,
                mqtt_password=password,
                admin_port=free_port(),
                # On the fleet broker central manages the accounts, as in production: a
                # kiosk blocked for flooding is shut out at the broker too.
                broker_control=options.secure,
            )
            library = asyncio.run(prepare(settings, options, broker.accounts))
            central = CentralProcess(settings).start()
            assert central.process is not None
            assert broker.broker.process is not None
            memory = PeakMemory(
                {"central": central.process.pid, "mosquitto": broker.broker.process.pid}
            )
            memory.start()
            result = _play(options, library, broker, links)
            memory.stopping.set()
            result.peak_rss_mb = memory.peak_mb
            result.central_alive, result.ready_at_end = _central_state(central)
            result.fallbacks = _fallbacks(central)
            while links:  # before the broker goes, so no client retries against it
                links.pop().close()
            central.stop()
            result.breaker = asyncio.run(_flag(settings))
            result.checks = asyncio.run(consistency(settings))
            return result
    finally:
        for link in links:
            link.close()
        if central is not None:
            central.stop()
        asyncio.run(_drop(dsn))
        shutil.rmtree(root, ignore_errors=True)


def _play(options: Options, library: Library, broker: Broker, links: list[KioskLink]) -> Result:
    port = broker.broker.port
    shown = ShownPasses()
    kiosks = []
    for k, shelf in enumerate(library.shelves):
        user, password = broker.login(shelf.kiosk_id)
        link = KioskLink(port, shelf.kiosk_id, username=user, password=password)
        links.append(link)
        kiosks.append((link, shelf, options.seed * 1000 + k))
    forger_log = AttackerLog()
    forger_link: KioskLink | None = None
    if options.attackers:
        user, password = broker.login(FORGER)
        forger_link = KioskLink(
            port, FORGER, username=user, password=password, on_verdict=forger_log.heard
        )
        links.append(forger_link)
    start = time.perf_counter()
    deadline = start + options.seconds
    honest = [
        HonestKiosk(
            link,
            shelf,
            library.signer,
            options.pace,
            deadline,
            shown,
            seed,
            give_up_s=options.give_up_s,
        )
        for link, shelf, seed in kiosks
    ]
    attack_started = time.time()
    forger: Forger | None = None
    flooder: flood.Flooder | None = None
    if forger_link is not None:
        user, password = broker.login(FLOODER)
        flooder = flood.start(
            port,
            FLOODER,
            seconds=options.seconds,
            max_messages=options.flood_max,
            username=user,
            password=password,
        )
        forger = Forger(
            forger_link,
            forger_log,
            library.forged_from,
            shown,
            rate=options.forge_rate,
            deadline=deadline,
        )
        forger.start()
    for kiosk in honest:
        kiosk.start()
    # A walk-up started before the deadline runs to its end: four events, each answered
    # or given up on.
    for kiosk in honest:
        kiosk.join(timeout=max(0.0, deadline - time.perf_counter()) + 4 * options.give_up_s + 30)
    elapsed = time.perf_counter() - start
    if forger is not None:
        forger.join(timeout=10)
    report = flooder.report(timeout=options.seconds + 30) if flooder is not None else None
    label = (
        f"{options.backend}{', secured broker' if options.secure else ''},"
        f" {options.kiosks} honest kiosks{', under attack' if options.attackers else ', baseline'}"
    )
    return Result(
        label=label,
        options=options,
        scans=[scan for kiosk in honest for scan in kiosk.scans],
        walkups=sum(kiosk.walkups for kiosk in honest),
        seconds=elapsed,
        flood=report,
        forger=forger_log if options.attackers else None,
        attack_started=attack_started,
        started=start,
    )


def _ratio(attacked: float, base: float) -> str:
    return "never answered" if math.isinf(attacked) else f"x{attacked / base:.1f}"


def timeline(scans: Sequence[Scan], started: float, step_s: float = 5.0) -> str:
    """Honest events answered as expected / sent, by when they were sent."""
    sent: Counter[int] = Counter()
    right: Counter[int] = Counter()
    for scan in scans:
        slot = int((scan.sent - started) // step_s)
        sent[slot] += 1
        right[slot] += scan.reason is scan.expected
    return ", ".join(
        f"{slot * step_s:.0f}-{(slot + 1) * step_s:.0f} s {right[slot]}/{sent[slot]}"
        for slot in sorted(sent)
    )


def _at(moment: float | None, start: float) -> str:
    return "never" if moment is None else f"{moment - start:.1f} s after the attack began"


def report(results: Sequence[Result]) -> str:
    """The Markdown table and, for each attacked run, what the attackers got."""
    lines = [
        "| run | walk-ups | honest events | p50 ms | p95 ms | p99 ms | max ms |"
        " answered wrongly | passes expired waiting | never answered | re-sends | bar |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lat = r.latency_ms
        lines.append(
            f"| {r.label} | {r.walkups:,} | {len(r.scans):,} | {_ms(lat['p50'])} |"
            f" {_ms(lat['p95'])} | {_ms(lat['p99'])} | {_ms(lat['max'])} |"
            f" {sum(r.wrong.values()):,} | {r.expired_passes} | {r.unanswered:,} |"
            f" {r.resends:,} | {'met' if r.meets_bar else 'FAILED'} |"
        )
    base = next((r for r in results if not r.options.attackers), None)
    attacked = [r for r in results if r.options.attackers]
    if base is not None and attacked:
        b, a = base.latency_ms, attacked[-1].latency_ms
        lines.append("")
        lines.append(
            f"Under attack / baseline: p50 {_ratio(a['p50'], b['p50'])},"
            f" p99 {_ratio(a['p99'], b['p99'])}, max {_ratio(a['max'], b['max'])}."
        )
    for r in results:
        lines.append("")
        lines.append(f"**{r.label}** ({r.seconds:.0f} s):")
        wrong = ", ".join(f"{k} x{v}" for k, v in r.wrong.most_common()) or "none"
        lines.append(f"- honest events answered other than expected: {wrong}")
        lines.append(
            f"- honest events answered as expected / sent, by when sent:"
            f" {timeline(r.scans, r.started)}"
        )
        lines.append(
            f"- central at the end: {'running' if r.central_alive else 'NOT RUNNING'};"
            f" /ready said `{r.ready_at_end}`"
        )
        if r.peak_rss_mb:
            memory = ", ".join(f"{name} {mb:,.0f} MB" for name, mb in r.peak_rss_mb.items())
            lines.append(f"- peak resident memory: {memory}")
        if r.fallbacks:
            again = ", ".join(f"{name} {count}" for name, count in r.fallbacks.items())
            lines.append(f"- batches decided again, and why: {again}")
        if r.breaker is not None:
            tripped = (
                f"tripped {_at(r.breaker.tripped_at.timestamp(), r.attack_started)}"
                f" ({r.breaker.trip_reason})"
                if r.breaker.tripped_at is not None
                else "not tripped"
            )
            lines.append(f"- circuit breaker: {tripped}")
        if r.flood is not None:
            f = r.flood
            lines.append(
                f"- flooder `{FLOODER}`: {f.total:,} messages in {f.stopped - f.started:.1f} s"
                f" ({f.rate:,.0f}/s; {dict(sorted(f.sent.items()))}); PUBACK reasons"
                f" {dict(f.pubacks)} (receive maximum {f.receive_max}); disconnects"
                f" {f.disconnects}; verdicts"
                f" {dict(f.verdicts)}; first KIOSK_BLOCKED"
                f" {_at(f.first_verdict.get('KIOSK_BLOCKED'), r.attack_started)}"
            )
        if r.forger is not None:
            g = r.forger
            lines.append(
                f"- forger `{FORGER}`: sent {dict(g.sent)}; verdicts {dict(g.verdicts)};"
                f" first KIOSK_BLOCKED {_at(g.first.get('KIOSK_BLOCKED'), r.attack_started)}"
            )
        lines.append(f"- invariant violations: {violations(r.checks)}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.hostile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long members walk up")
    parser.add_argument("--kiosks", type=int, default=50, help="honest kiosks")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--secure", action="store_true", help="fleet broker: passwords, ACLs")
    parser.add_argument("--baseline", action="store_true", help="first a run with no attackers")
    parser.add_argument("--forge-rate", type=float, default=3.0, help="forged codes per second")
    parser.add_argument(
        "--flood-max", type=int, default=10_000_000, help="most garbage messages sent"
    )
    parser.add_argument(
        "--walkup-every", type=float, default=4.0, help="mean seconds between walk-ups per kiosk"
    )
    parser.add_argument("--scan-gap", type=float, default=1.0, help="mean seconds between scans")
    parser.add_argument(
        "--give-up", type=float, default=GIVE_UP_S, help="seconds a member waits for a verdict"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the report here")
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace, *, attackers: bool) -> Options:
    """The run's options from the command line."""
    return Options(
        kiosks=args.kiosks,
        seconds=args.seconds,
        backend=args.backend,
        secure=args.secure,
        attackers=attackers,
        forge_rate=args.forge_rate,
        flood_max=args.flood_max,
        pace=Pace(walkup_every_s=args.walkup_every, scan_gap_s=args.scan_gap),
        give_up_s=args.give_up,
        seed=args.seed,
    )


def _commit() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, no input
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return "?"


def main(argv: Sequence[str] | None = None) -> int:
    """Run (the baseline, then) the attack; print the report; 0 if the bar is met."""
    args = parse_args(argv)
    results = []
    if args.baseline:
        results.append(run(options_from(args, attackers=False)))
    results.append(run(options_from(args, attackers=True)))
    command = "python -m bench.hostile " + " ".join(sys.argv[1:] if argv is None else argv)
    text = (
        f"{report(results)}\n\nCommand: `{command}` at commit {_commit()},"
        f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if results[-1].meets_bar else 1


if __name__ == "__main__":
    sys.exit(main())
