"""The staff console at library scale: page times with 1,000 kiosks, 10,000 items and members.

    .venv/bin/python -m bench.console_pages [--items 10000] [--kiosks 1000] [--loans 2000]

Starts Mosquitto and central (SQLite) as processes, imports the library through the admin
API, opens loans straight in the database (as checkouts at kiosks would leave them), signs
a volunteer in through their link and times each console page (median and worst of
``--repeat`` loads, searches and a deep page included).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from broker.local import LocalBroker, free_port
from central.settings import CentralSettings
from testkit.processes import CentralProcess, admin_client


def seed(admin: httpx.Client, items: int, members: int, kiosks: int) -> None:
    """Shelves, items, members and kiosks through the admin API's imports."""
    shelves = [{"shelf_id": f"SHELF-{n:03d}", "name": f"Shelf {n}"} for n in range(50)]
    admin.post("/shelves/import", json={"rows": shelves}).raise_for_status()
    rows = [
        {"item_id": f"ITEM-{n:05d}", "shelf_id": f"SHELF-{n % 50:03d}", "name": f"Tool {n}"}
        for n in range(items)
    ]
    admin.post("/items/import", json={"rows": rows}, timeout=120).raise_for_status()
    people = [{"member_id": f"M-{n:05d}", "name": f"Member {n}"} for n in range(members)]
    admin.post("/members/import", json={"rows": people}, timeout=120).raise_for_status()
    for n in range(kiosks):
        kiosk = {"kiosk_id": f"KIOSK-{n:04d}", "shelf_id": f"SHELF-{n % 50:03d}"}
        admin.post("/kiosks", json=kiosk).raise_for_status()


def open_loans(db: Path, loans: int) -> None:
    """``loans`` open checkouts, each in its own closed session, written directly (this
    connection leaves foreign keys off: the passes behind the sessions are not needed)."""
    now = datetime.now(UTC)
    with sqlite3.connect(db) as conn:
        for n in range(loans):
            at = (now - timedelta(days=n % 30)).isoformat()
            due = (now + timedelta(days=14 - n % 30)).isoformat()
            cur = conn.execute(
                "INSERT INTO sessions (kiosk_id, member_id, pass_id, opened_at, expires_at,"
                " closed_at) VALUES (?, ?, ?, ?, ?, ?)",
                ("KIOSK-0000", f"M-{n:05d}", f"BENCH-{n}", at, at, at),
            )
            conn.execute(
                "INSERT INTO checkouts (item_id, member_id, session_id, kiosk_id, event_id,"
                " checked_out_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (f"ITEM-{n:05d}", f"M-{n:05d}", cur.lastrowid, "KIOSK-0000", f"E{n}", at, due),
            )


def main() -> int:
    """Print one line per page: median and worst milliseconds."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--kiosks", type=int, default=1_000)
    parser.add_argument("--loans", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalBroker(Path(tmp) / "broker") as broker:
        settings = CentralSettings(
            instance_id="bench-console",
            data_dir=Path(tmp) / "central",
            mqtt_port=broker.port,
            admin_port=free_port(),
        )
        central = CentralProcess(settings).start()
        try:
            with admin_client(central) as admin:
                started = time.perf_counter()
                seed(admin, args.items, args.members, args.kiosks)
                print(f"seeded in {time.perf_counter() - started:.1f} s")
                open_loans(settings.sqlite_file, args.loans)
                invited = admin.post(
                    "/staff-accounts/invite",
                    json={"email": "vera@example.org", "role": "volunteer", "mail": False},
                )
                invited.raise_for_status()
                link = invited.json()["link"]
            with httpx.Client(base_url=link.split("/staff/")[0], timeout=30) as staff:
                assert staff.get(link).status_code == 303
                pages = {
                    f"fleet ({args.kiosks:,} kiosks, page 1)": "/staff/",
                    "fleet search": "/staff/?q=KIOSK-09",
                    "library page 1": "/staff/library",
                    "library page 150": "/staff/library?page_no=150",
                    "library search 'tool 99'": "/staff/library?q=tool%2099",
                    "library one shelf": "/staff/library?shelf=SHELF-007",
                    "members page 1": "/staff/members",
                    "members search": "/staff/members?q=member%204242",
                    f"circulation ({args.loans:,} loans)": "/staff/circulation",
                    "circulation search": "/staff/circulation?q=M-0123",
                    "label sheet (PDF, 50 labels)": "/staff/labels.pdf?shelf=SHELF-001",
                }
                print("| page | median ms | worst ms |")
                print("|---|---|---|")
                for name, path in pages.items():
                    times = []
                    for _ in range(args.repeat):
                        t0 = time.perf_counter()
                        answer = staff.get(path, headers={"Accept": "text/html"})
                        times.append((time.perf_counter() - t0) * 1000)
                        assert answer.status_code == 200, (path, answer.status_code)
                    print(f"| {name} | {statistics.median(times):.1f} | {max(times):.1f} |")
        finally:
            central.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
