"""Reminder mail through a real SMTP server (aiosmtpd): once, never for a returned item, retried.

Loans are made the way members make them (passes and labels scanned through the real
broker and central); mail goes through a real SMTP server on a free port, which can be
told to answer 451 for a while; rounds are run with ``POST /reminders/run`` (what
``cs-admin reminders run-now`` calls) on central's fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from broker import topics
from broker.local import LocalBroker, free_port
from broker.messages import CodeScan, Reason, SessionDone
from central.clock import FakeClock
from testkit.probe import Probe
from tests.conftest import RunningCentral, backend_settings, seed_library, start_central
from tests.integration.test_admin_cli import run_cli, token_file_of, url_of
from tests.support.scans import ask

ADA, GRACE = "ada@example.org", "grace@example.org"


class Mailbox:
    """A real SMTP server's handler: keeps each reminder; answers 451 while ``busy`` > 0."""

    def __init__(self) -> None:
        self.mail: list[EmailMessage] = []
        self.busy = 0
        self.refused = 0
        self._lock = threading.Lock()

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        with self._lock:
            if self.busy > 0:
                self.busy -= 1
                self.refused += 1
                return "451 4.3.0 try again later"
            raw = envelope.content if isinstance(envelope.content, bytes) else b""
            message = message_from_bytes(raw, policy=policy.default)
            if "sign-in" not in str(message["Subject"]).lower():  # staff invitations
                self.mail.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        """Reminders received for ``address``."""
        with self._lock:
            return [m for m in self.mail if m["To"] == address]


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(cast(EmailMessage, part).get_content())


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@dataclass
class Library:
    central: RunningCentral
    others: list[RunningCentral]
    box: Mailbox
    clock: FakeClock
    origin: str

    async def run(self, central: RunningCentral | None = None) -> dict[str, int]:
        answer = await (central or self.central).admin.post("/reminders/run")
        answer.raise_for_status()
        return cast(dict[str, int], answer.json())

    async def log(self, **query: str) -> list[dict[str, Any]]:
        answer = await self.central.admin.get("/reminders/log", params=query)
        answer.raise_for_status()
        return cast(list[dict[str, Any]], answer.json())


@contextlib.asynccontextmanager
async def library(
    backend: str,
    tmp_path: Path,
    broker: LocalBroker,
    port: int,
    box: Mailbox,
    instances: int = 1,
    every_s: float = 3600.0,
) -> AsyncIterator[Library]:
    """Central(s) with the members' app on, a seeded library, Ada and Grace with addresses.

    Rounds are run by hand unless ``every_s`` says otherwise: the periodic one waits an hour.
    """
    clock = FakeClock(datetime.now(UTC))
    members_port = free_port()
    origin = f"http://localhost:{members_port}"
    extra = {
        "members_app": True,
        "members_port": members_port,
        "members_origin": origin,
        "smtp_port": port,
        "reminder_every_s": every_s,
    }
    async with (
        backend_settings(backend, tmp_path, broker, **extra) as first,
        contextlib.AsyncExitStack() as stack,
    ):
        running = [await stack.enter_async_context(start_central(first, clock))]
        for n in range(1, instances):
            other = first.model_copy(
                update={
                    "instance_id": f"{first.instance_id}-{n}",
                    "admin_port": free_port(),
                    "members_port": free_port(),
                }
            )
            running.append(await stack.enter_async_context(start_central(other, clock)))
        admin = running[0].admin
        await seed_library(admin)
        for member, email in (("M-1001", ADA), ("M-1002", GRACE)):
            invited = await admin.post(f"/members/{member}/invite", json={"email": email})
            invited.raise_for_status()
        # Every loan is due soon (14-day loans), and the day's mail may go at once.
        changed = await admin.patch(
            "/reminders/settings",
            json={"digest_hour": 0, "due_soon_days": 30, "timezone": "UTC"},
        )
        changed.raise_for_status()
        yield Library(running[0], running[1:], box, clock, origin)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as running:
        yield running


@pytest.fixture(params=["sqlite", "postgres"])
async def lib(
    request: pytest.FixtureRequest, tmp_path: Path, broker: LocalBroker, smtp: tuple[Mailbox, int]
) -> AsyncIterator[Library]:
    async with library(request.param, tmp_path, broker, smtp[1], smtp[0]) as running:
        yield running


async def borrow(lib: Library, probe: Probe, kiosk: str, member: str, *items: str) -> None:
    """``member`` checks ``items`` out at ``kiosk`` with a pass, as at the shelf."""
    admin = lib.central.admin
    codes = [(await admin.post(f"/members/{member}/passes", json={})).json()["code"]]
    codes += [(await admin.get(f"/items/{item}/label")).json()["code"] for item in items]
    probe.subscribe(topics.verdict(kiosk))
    for n, code in enumerate(codes):
        verdict = await ask(probe, event(kiosk, code, lib.clock))
        assert verdict.reason is (Reason.SESSION_OPENED if n == 0 else Reason.CHECKED_OUT)
    done = SessionDone(event_id=uuid.uuid4().hex, kiosk_id=kiosk, scanned_at=lib.clock.now())
    assert (await ask(probe, done)).reason is Reason.SESSION_CLOSED


async def give_back(
    lib: Library, probe: Probe, kiosk: str, item: str, said: Reason = Reason.RETURNED
) -> None:
    label = (await lib.central.admin.get(f"/items/{item}/label")).json()["code"]
    probe.subscribe(topics.verdict(kiosk))
    assert (await ask(probe, event(kiosk, label, lib.clock))).reason is said


def event(kiosk: str, code: str, clock: FakeClock) -> CodeScan:
    return CodeScan(event_id=uuid.uuid4().hex, kiosk_id=kiosk, code=code, scanned_at=clock.now())


async def test_the_digest_arrives_once_and_never_names_a_returned_item(
    lib: Library, probe: Probe
) -> None:
    await borrow(lib, probe, "KIOSK-A1", "M-1001", "DRILL-01", "SAW-01")
    await give_back(lib, probe, "KIOSK-A1", "SAW-01")
    # Grace waits for the drill: Ada may not renew it (the walk-up's renewal rule).
    held = await lib.central.admin.post(
        "/holds", json={"item_id": "DRILL-01", "member_id": "M-1002"}
    )
    assert held.json()["state"] == "waiting"

    assert (await lib.run())["sent"] == 1
    [digest] = lib.box.to(ADA)
    text = body(digest)
    assert digest["Subject"] == "1 item due soon"
    assert "Cordless drill (DRILL-01), due " in text
    assert "Jigsaw" not in text  # returned before the round
    assert f"{lib.origin}/unsubscribe/" in text
    assert digest["List-Unsubscribe"].startswith(f"<{lib.origin}/unsubscribe/")
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert digest["Date"]
    assert str(digest["Message-ID"]).endswith("@localhost>")
    assert "renew" not in text.lower()  # someone holds it
    assert f"{lib.origin}/loans" not in text

    # A second round, and a later one the same day: nothing more.
    assert await lib.run() == {"claimed": 0, "sent": 0, "failed": 0}
    lib.clock.advance(3 * 3600)
    assert await lib.run() == {"claimed": 0, "sent": 0, "failed": 0}
    assert len(lib.box.to(ADA)) == 1
    [row] = await lib.log(member="M-1001")
    assert (row["kind"], row["items"], row["status"], row["attempts"]) == (
        "digest",
        ["DRILL-01"],
        "sent",
        1,
    )


async def test_451_then_accepted_is_delivered_on_retry_and_a_return_meanwhile_cancels(
    lib: Library, probe: Probe
) -> None:
    await borrow(lib, probe, "KIOSK-A1", "M-1001", "DRILL-01")
    await borrow(lib, probe, "KIOSK-B1", "M-1002", "RAKE-01")
    lib.box.busy = 2  # both digests meet a busy server once
    assert (await lib.run())["failed"] == 2
    assert lib.box.refused == 2
    failed = {r["member_id"]: r for r in await lib.log(status="failed")}
    assert failed["M-1001"]["last_error"].startswith("451")
    assert failed["M-1001"]["attempts"] == 1
    # Grace brings the rake back before the retry: her mail has nothing left to say.
    await give_back(lib, probe, "KIOSK-B1", "RAKE-01")

    assert (await lib.run())["sent"] == 0  # the retry waits its backoff (60 s)
    lib.clock.advance(61)
    assert (await lib.run())["sent"] == 1
    assert [m["Subject"] for m in lib.box.to(ADA)] == ["1 item due soon"]
    assert lib.box.to(GRACE) == []
    statuses = {r["member_id"]: (r["status"], r["attempts"]) for r in await lib.log()}
    assert statuses == {"M-1001": ("sent", 2), "M-1002": ("cancelled", 2)}
    metrics = (await lib.central.admin.get("/metrics")).text
    assert 'qr_reminders_total{kind="digest",outcome="failed"} 2.0' in metrics
    assert 'qr_reminders_total{kind="digest",outcome="sent"} 1.0' in metrics
    assert 'qr_reminders_total{kind="digest",outcome="cancelled"} 1.0' in metrics


async def test_unsubscribe_asks_on_get_stops_on_post_and_overdue_mail_escalates(
    lib: Library, probe: Probe
) -> None:
    await borrow(lib, probe, "KIOSK-A1", "M-1001", "DRILL-01")
    await borrow(lib, probe, "KIOSK-B1", "M-1002", "RAKE-01")
    await lib.run()
    [ada_digest] = lib.box.to(ADA)
    link = ada_digest["List-Unsubscribe"].strip("<>")
    async with httpx.AsyncClient(timeout=10) as browser:
        # Opening the link (or a mail scanner following it) changes nothing...
        page = await browser.get(link)
        assert page.status_code == 200
        assert 'method="post"' in page.text
        assert 'id="unsubscribed"' not in page.text
        # ...the button does (as a one-click client's POST would).
        done = await browser.post(link, data={"List-Unsubscribe": "One-Click"})
        assert 'id="unsubscribed"' in done.text
        assert (await browser.get(link[:-3] + "xyz")).status_code == 400
    # The next day Ada borrows the jigsaw: due soon, but no digest for her any more.
    lib.clock.advance(86400)
    await borrow(lib, probe, "KIOSK-A1", "M-1001", "SAW-01")
    await lib.run()
    assert len(lib.box.to(ADA)) == 1
    # Fifteen days on the first loans are a day past due (14-day loans, overdue mail on day 1).
    lib.clock.advance(14 * 86400)
    await lib.run()
    assert len(lib.box.to(ADA)) == 1  # unsubscribed: no overdue mail
    overdue = [m for m in lib.box.to(GRACE) if "overdue" in str(m["Subject"])]
    assert [m["Subject"] for m in overdue] == ["1 overdue item"]
    assert "Leaf rake (RAKE-01)" in body(overdue[0])
    assert "1 day(s) past their due date" in body(overdue[0])
    # The next escalation is on day 7, once.
    lib.clock.advance(6 * 86400)
    await lib.run()
    await lib.run()
    late = [body(m) for m in lib.box.to(GRACE) if "overdue" in str(m["Subject"])]
    assert len(late) == 2
    assert "7 day(s) past" in late[1]
    rows = (await lib.central.admin.get("/audit", params={"limit": 500})).json()
    assert [r["member_id"] for r in rows if r["action"] == "reminders.unsubscribe"] == ["M-1001"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_two_centrals_racing_rounds_send_each_mail_once(
    backend: str, tmp_path: Path, broker: LocalBroker, probe: Probe, smtp: tuple[Mailbox, int]
) -> None:
    async with library(backend, tmp_path, broker, smtp[1], smtp[0], instances=2) as lib:
        await borrow(lib, probe, "KIOSK-A1", "M-1001", "DRILL-01", "SAW-01")
        await borrow(lib, probe, "KIOSK-B1", "M-1002", "RAKE-01")
        centrals = [lib.central, *lib.others]
        for _ in range(3):
            await asyncio.gather(*(lib.run(c) for c in centrals for _ in range(3)))
        assert len(lib.box.to(ADA)) == 1
        assert len(lib.box.to(GRACE)) == 1
        text = body(lib.box.to(ADA)[0])
        # Nobody waits for either, no renewal yet: both may be renewed, on the loans page.
        assert "Cordless drill (DRILL-01), due " in text
        assert text.count("- you can renew it") == 2
        assert f"Renew on your loans page (sign in, then press Renew): {lib.origin}/loans" in text
        assert sorted(r["status"] for r in await lib.log()) == ["sent", "sent"]


async def test_cs_admin_sets_shows_and_reads_the_log(
    lib: Library, probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--url", url_of(lib.central), "--token-file", str(token_file_of(lib.central))]
    changed = await run_cli(
        capsys,
        [
            *base,
            "reminders",
            "settings",
            "set",
            "--overdue-days",
            "2,9",
            "--timezone",
            "Europe/Paris",
        ],
    )
    assert changed.code == 0, changed.err
    shown = await run_cli(capsys, [*base, "--json", "reminders", "settings", "show"])
    assert (shown.json()["overdue_days"], shown.json()["timezone"]) == ([2, 9], "Europe/Paris")
    refused = await run_cli(capsys, [*base, "reminders", "settings", "set", "--timezone", "Mars/X"])
    assert refused.code == 1
    assert "unknown time zone" in refused.err
    await borrow(lib, probe, "KIOSK-A1", "M-1001", "DRILL-01")
    ran = await run_cli(capsys, [*base, "--json", "reminders", "run-now"])
    assert ran.json()["sent"] == 1
    log = await run_cli(
        capsys, [*base, "reminders", "log", "--member", "M-1001", "--status", "sent"]
    )
    assert "DRILL-01" in log.out
    assert "digest" in log.out
    none = await run_cli(capsys, [*base, "reminders", "log", "--status", "bounced"])
    assert "DRILL-01" not in none.out
    # Nothing here is 3 days old yet: the shortest window forgets nothing.
    pruned = await run_cli(capsys, [*base, "--json", "reminders", "prune", "--keep-days", "3"])
    assert pruned.json() == {"keep_days": 3, "claims": 0, "mails": 0}


async def test_hold_ready_mail_goes_once_and_starts_the_holds_clock(lib: Library) -> None:
    admin = lib.central.admin
    # On the shelf, so ready at once: Grace's jigsaw, Ada's rake (which she then cancels).
    saw = (await admin.post("/holds", json={"item_id": "SAW-01", "member_id": "M-1002"})).json()
    rake = (await admin.post("/holds", json={"item_id": "RAKE-01", "member_id": "M-1001"})).json()
    assert (saw["state"], rake["state"]) == ("ready", "ready")
    assert saw["notified_at"] is None
    (await admin.delete(f"/holds/{rake['hold_id']}")).raise_for_status()

    assert (await lib.run())["sent"] == 1
    [mail] = lib.box.to(GRACE)
    assert mail["Subject"] == "Ready for you: Jigsaw"
    assert "List-Unsubscribe" not in mail
    assert "Jigsaw (SAW-01)" in body(mail)
    assert lib.box.to(ADA) == []  # her hold was cancelled before the round
    [hold] = (await admin.get("/holds", params={"member_id": "M-1002"})).json()
    assert hold["notified_at"] is not None  # the hold's expiry clock runs from here
    lib.clock.advance(30)
    assert (await lib.run())["claimed"] == 0
    assert len(lib.box.to(GRACE)) == 1
    [row] = await lib.log(member="M-1002")
    assert (row["kind"], row["items"], row["status"]) == ("hold_ready", ["SAW-01"], "sent")


async def test_an_unreachable_server_costs_one_attempt_per_round_and_loses_nothing(
    tmp_path: Path, broker: LocalBroker, probe: Probe
) -> None:
    box, port = Mailbox(), free_port()
    server = Controller(box, hostname="127.0.0.1", port=port)
    server.start()  # for the invitations; stopped before the round
    async with library("sqlite", tmp_path, broker, port, box) as lib:
        await borrow(lib, probe, "KIOSK-A1", "M-1001", "DRILL-01")
        await borrow(lib, probe, "KIOSK-B1", "M-1002", "RAKE-01")
        server.stop()
        assert await lib.run() == {"claimed": 2, "sent": 0, "failed": 1}
        rows = await lib.log()
        assert sorted((r["status"], r["attempts"]) for r in rows) == [("failed", 1), ("queued", 0)]
        assert any((r["last_error"] or "").startswith("ConnectionRefusedError") for r in rows)


async def test_run_now_is_refused_while_the_members_app_is_off(central: RunningCentral) -> None:
    refused = await central.admin.post("/reminders/run")
    assert refused.status_code == 409
    assert "members' app" in refused.json()["detail"]
    # The settings are still there to prepare.
    assert (await central.admin.get("/reminders/settings")).json()["overdue_days"] == [1, 7, 14]


async def test_each_central_runs_rounds_by_itself(
    tmp_path: Path, broker: LocalBroker, probe: Probe, smtp: tuple[Mailbox, int]
) -> None:
    async with library("sqlite", tmp_path, broker, smtp[1], smtp[0], every_s=0.2) as lib:
        # Rounds have looked at the loans (none) for today: a new loan must bring them back.
        await asyncio.sleep(0.6)
        await borrow(lib, probe, "KIOSK-A1", "M-1001", "DRILL-01")
        for _ in range(100):
            if lib.box.to(ADA):
                break
            await asyncio.sleep(0.1)
        assert [m["Subject"] for m in lib.box.to(ADA)] == ["1 item due soon"]
        await asyncio.sleep(1.0)  # several more rounds
        assert len(lib.box.to(ADA)) == 1


async def test_an_item_returned_to_the_hold_shelf_brings_the_next_member_their_mail(
    lib: Library, probe: Probe
) -> None:
    await borrow(lib, probe, "KIOSK-A1", "M-1001", "DRILL-01")
    admin = lib.central.admin
    placed = await admin.post("/holds", json={"item_id": "DRILL-01", "member_id": "M-1002"})
    assert placed.json()["state"] == "waiting"
    await lib.run()
    assert lib.box.to(GRACE) == []  # waiting is not ready
    # Ada brings the drill back: it goes to the hold shelf for Grace, inside the return.
    await give_back(lib, probe, "KIOSK-A1", "DRILL-01", Reason.RETURNED_TO_HOLD)
    await lib.run()
    [mail] = lib.box.to(GRACE)
    assert mail["Subject"] == "Ready for you: Cordless drill"
    # Told at the return's round, Grace has the library's 48 h from now: the mail says so.
    kept = lib.clock.now() + timedelta(hours=48)
    assert f"It is kept for you until {kept:%a %d %b %Y %H:%M}" in body(mail)
    [hold] = (await admin.get("/holds", params={"member_id": "M-1002"})).json()
    assert (hold["state"], hold["notified_at"] is not None) == ("ready", True)


async def test_a_loan_renewed_at_the_kiosk_is_reminded_again_of_its_new_date(
    lib: Library, probe: Probe
) -> None:
    await borrow(lib, probe, "KIOSK-A1", "M-1001", "DRILL-01")
    await lib.run()
    assert "you can renew it" in body(lib.box.to(ADA)[0])
    # The next day Ada renews it at the shelf: her own loan, scanned again in a session.
    lib.clock.advance(86400)
    admin = lib.central.admin
    pass_code = (await admin.post("/members/M-1001/passes", json={})).json()["code"]
    drill = (await admin.get("/items/DRILL-01/label")).json()["code"]
    probe.subscribe(topics.verdict("KIOSK-A1"))
    assert (
        await ask(probe, event("KIOSK-A1", pass_code, lib.clock))
    ).reason is Reason.SESSION_OPENED
    renewed = await ask(probe, event("KIOSK-A1", drill, lib.clock))
    assert renewed.reason is Reason.RENEWED
    await lib.run()
    digests = lib.box.to(ADA)
    assert len(digests) == 2
    assert f"due {renewed.due_at:%a %d %b %Y}" in body(digests[1])


async def test_pruning_forgets_spent_claims_and_old_mail_but_never_mails_twice(
    lib: Library, probe: Probe
) -> None:
    await borrow(lib, probe, "KIOSK-A1", "M-1001", "DRILL-01", "SAW-01")
    await borrow(lib, probe, "KIOSK-B1", "M-1002", "RAKE-01")
    await lib.run()  # both get a digest
    lib.clock.advance(15 * 86400)
    await lib.run()  # both get the day-1 overdue mail
    await give_back(lib, probe, "KIOSK-A1", "DRILL-01")
    await give_back(lib, probe, "KIOSK-A1", "SAW-01")
    lib.clock.advance(91 * 86400)
    await lib.run()  # Grace still has the rake: the day-14 mail
    assert (len(lib.box.to(ADA)), len(lib.box.to(GRACE))) == (2, 3)

    pruned = await lib.central.admin.post("/reminders/prune")
    assert pruned.status_code == 200, pruned.text
    # Ada's two mails named only loans that came back: claims and log rows go. Grace's
    # older mails name the rake, still out, so their line claims (and rows) stay.
    assert pruned.json()["mails"] == 2
    assert await lib.log(member="M-1001") == []
    grace = await lib.log(member="M-1002")
    assert [(r["kind"], r["step"]) for r in grace] == [
        ("overdue", 14),
        ("overdue", 1),
        ("digest", None),
    ]

    # Another 91 days: the day-14 claim is old now, but the rake is still out. Pruning
    # keeps it, so the round after finds the line claimed and Grace gets nothing twice.
    lib.clock.advance(91 * 86400)
    assert (await lib.central.admin.post("/reminders/prune")).json()["mails"] == 0
    assert (await lib.run())["sent"] == 0
    assert len(lib.box.to(GRACE)) == 3
    # An admin's prune is audited; fewer than 3 days is refused (a day's claim is local).
    rows = (await lib.central.admin.get("/audit", params={"limit": 500})).json()
    assert [r["detail"]["keep_days"] for r in rows if r["action"] == "reminders.prune"] == [90, 90]
    too_few = await lib.central.admin.post("/reminders/prune", params={"keep_days": 2})
    assert too_few.status_code == 422
