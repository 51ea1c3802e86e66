"""Live catalogue clients on one central while it decides scans: update delay and page time.

    .venv/bin/python -m bench.members_live --clients 1000 --rate 500 --seconds 20

Starts Mosquitto and one central process (SQLite) with the members' app, opens
``--clients`` server-sent-event streams on its live catalogue (``/events``), offers
``--rate`` scans a second through the real broker (bench.load's kiosks: checkouts and
returns, each changing an item's availability), and meanwhile loads the catalogue page
once every ``--page-every`` seconds. Reports: availability change (central's
``changed_at``) → event read by a page, p50/p95/p99 over every delivery; catalogue page
time p50/p95; scan → verdict p99; events dropped by slow pages (seq gaps are not tracked:
counted as changes a client never saw).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from bench.load import Player, Stats, open_loop, open_session, percentiles, prepare
from broker.local import LocalBroker, free_port
from central.settings import CentralSettings
from testkit.processes import CentralProcess
from testkit.security import LIMITS_OFF

_MARK = b'"changed_at": "'


class Pages:
    """Many live catalogue pages: each reads its event stream and notes each delay."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.connected = 0
        self.events = 0

    async def page(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        async with client.stream("GET", "/events") as response:
            self.connected += 1
            async for chunk in response.aiter_bytes():
                now = time.time()
                start = 0
                while (at := chunk.find(_MARK, start)) >= 0:
                    stamp = chunk[at + len(_MARK) : at + len(_MARK) + 32].split(b'"')[0]
                    changed = datetime.fromisoformat(stamp.decode()).timestamp()
                    self.delays.append(now - changed)
                    self.events += 1
                    start = at + 1
                if stop.is_set():
                    return


@dataclass
class Measured:
    """What one run saw."""

    connected: int
    deliveries: int
    delay_ms: dict[str, float]
    page_ms: dict[str, float]
    scans: tuple[int, float]


async def measure(
    origin: str, clients: int, run_scans: Callable[[], tuple[int, float]], page_every: float
) -> Measured:
    pages = Pages()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    # Streams wait for events as long as the run lasts: no read timeout.
    timeout = httpx.Timeout(30, read=None)
    async with httpx.AsyncClient(base_url=origin, limits=limits, timeout=timeout) as client:
        await _until_up(client)
        streams = [asyncio.create_task(pages.page(client, stop)) for _ in range(clients)]
        deadline = time.monotonic() + 60
        while pages.connected < clients and time.monotonic() < deadline:  # noqa: ASYNC110 - a count, not an event
            await asyncio.sleep(0.1)
        scans = asyncio.create_task(asyncio.to_thread(run_scans))
        page_times: list[float] = []
        async with httpx.AsyncClient(base_url=origin, timeout=30) as browser:
            while not scans.done():
                start = time.perf_counter()
                (await browser.get("/")).raise_for_status()
                page_times.append(time.perf_counter() - start)
                await asyncio.sleep(page_every)
        scanned = await scans
        await asyncio.sleep(2)  # the last changes reach the pages
        stop.set()
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    return Measured(
        pages.connected,
        pages.events,
        percentiles(pages.delays),
        percentiles(page_times),
        scanned,
    )


async def _until_up(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            (await client.get("/")).raise_for_status()
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
        else:
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--page-every", type=float, default=0.2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cs-members-live-"))
    broker = LocalBroker(root / "broker").start()
    process: CentralProcess | None = None
    try:
        port = free_port()
        settings = CentralSettings(
            instance_id="bench-members",
            data_dir=root / "central",
            mqtt_port=broker.port,
            admin_port=free_port(),
            members_app=True,
            members_port=port,
            members_origin=f"http://127.0.0.1:{port}",
            **LIMITS_OFF,
        )
        library = asyncio.run(prepare(settings))
        process = CentralProcess(settings).start()
        player = Player(broker.port, Stats())
        open_session(player, library)
        player.stats.sent.clear()
        player.stats.received.clear()

        def run_scans() -> tuple[int, float]:
            return open_loop(player, library, rate=args.rate, seconds=args.seconds, seed=1)

        result = asyncio.run(
            measure(settings.members_origin, args.clients, run_scans, args.page_every)
        )
        player.close()
        stats = player.stats
        verdict = [stats.received[e] - stats.sent[e] for e in stats.received if e in stats.sent]
        scans, elapsed = result.scans
        print(f"clients connected: {result.connected} of {args.clients}")
        print(f"scans offered: {scans} in {elapsed:.1f} s ({scans / elapsed:.0f}/s)")
        print(f"verdicts: {len(stats.received)}, scan->verdict ms {percentiles(verdict)}")
        print(f"page deliveries: {result.deliveries}")
        print(f"availability change -> page ms: {result.delay_ms}")
        print(f"catalogue page time ms: {result.page_ms}")
    finally:
        if process is not None:
            process.stop()
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
