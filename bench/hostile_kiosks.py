"""Honest kiosks walking up like members, and a kiosk showing forged codes, each on its own link.

Every kiosk is one paho connection with its own client id (its username on a secured
broker), so the broker treats it as the real kiosk would be treated. An honest kiosk runs
the walk-up script on a thread at a member's pace: a fresh pass, one or two labels, "done";
or a return of one or two items it lent earlier. It waits for each verdict as the kiosk
does and re-sends an unanswered event with its original event id every
:data:`RESEND_S`, as the kiosk's outbox does. Latency is taken from the moment an event
is handed to the client to the moment its verdict arrives.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from broker import topics
from broker.messages import CodeScan, Reason, SessionDone, Verdict, encode
from broker.transport import nodelay
from central.tokens import TokenSigner

RESEND_S = 5.0  # the kiosk's own ``resend_every_s``
GIVE_UP_S = 30.0  # a member waits no longer; the scan counts as never answered
PASS_LIFE = timedelta(seconds=30)  # a phone pass rotates at least every 30 s
FOREIGN_CODES = ("HTTPS://EXAMPLE.COM/WIN-A-PRIZE", "WIFI:S:LIBRARY:T:WPA:P:SECRET", "12345")


class KioskLink:
    """One kiosk's MQTT 5 connection: sends its events, collects the verdicts on them."""

    def __init__(
        self,
        port: int,
        kiosk_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        on_verdict: Callable[[Verdict, float], None] | None = None,
    ) -> None:
        self.kiosk_id = kiosk_id
        self.answers: dict[str, tuple[float, Reason]] = {}
        self._on_verdict = on_verdict
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=kiosk_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_socket_open = lambda _c, _u, sock: nodelay(sock)
        self.client.on_message = self._message
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_connect = lambda c, *_a: c.subscribe(topics.verdict(kiosk_id), qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(15):
            raise RuntimeError(f"{kiosk_id} could not subscribe to its verdicts")

    def _message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        now = time.perf_counter()
        verdict = Verdict.model_validate_json(message.payload)
        with self._changed:
            self.answers.setdefault(verdict.event_id, (now, verdict.reason))
            self._changed.notify_all()
        if self._on_verdict is not None:
            self._on_verdict(verdict, now)

    def send(self, event: CodeScan | SessionDone) -> float:
        """Hand ``event`` to the client at QoS 1; when (``perf_counter``)."""
        sent = time.perf_counter()
        self.client.publish(topics.scan(self.kiosk_id), encode(event), qos=1)
        return sent

    def wait(self, event_id: str, until: float) -> tuple[float, Reason] | None:
        """The verdict on ``event_id`` (arrival time, reason), or None by ``until``."""
        with self._changed:
            while event_id not in self.answers:
                left = until - time.perf_counter()
                if left <= 0:
                    return None
                self._changed.wait(left)
            return self.answers[event_id]

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@dataclass(slots=True)
class Scan:
    """One honest event: what the member did, what they should have got, what they got."""

    kiosk_id: str
    step: str  # "pass", "label", "done" or "return"
    expected: Reason
    sent: float  # perf_counter
    answered: float | None = None
    reason: Reason | None = None
    resends: int = 0

    @property
    def latency(self) -> float | None:
        """Seconds from handing the event to the client to its verdict."""
        return None if self.answered is None else self.answered - self.sent


@dataclass
class Shelf:
    """What one honest kiosk lends: its items (label codes by id) and its members' passes."""

    kiosk_id: str
    labels: dict[str, str]
    passes: list[tuple[str, str]]  # (pass id, member id), each shown once


@dataclass
class Pace:
    """How members move: seconds between walk-ups at one kiosk and between scans."""

    walkup_every_s: float = 4.0
    scan_gap_s: float = 1.0

    def between_walkups(self, rng: random.Random) -> float:
        return rng.uniform(0.5, 1.5) * self.walkup_every_s

    def between_scans(self, rng: random.Random) -> float:
        return rng.uniform(0.5, 1.5) * self.scan_gap_s


@dataclass
class ShownPasses:
    """Passes honest members have used, for the forger to replay (a shared screenshot)."""

    codes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, code: str) -> None:
        with self.lock:
            self.codes.append(code)

    def latest(self) -> str | None:
        with self.lock:
            return self.codes[-1] if self.codes else None


class HonestKiosk(threading.Thread):
    """Members walking up to one kiosk until the deadline; every event recorded."""

    def __init__(
        self,
        link: KioskLink,
        shelf: Shelf,
        signer: TokenSigner,
        pace: Pace,
        deadline: float,
        shown: ShownPasses,
        seed: int,
        *,
        give_up_s: float = GIVE_UP_S,
    ) -> None:
        super().__init__(name=f"honest-{shelf.kiosk_id}", daemon=True)
        self.give_up_s = give_up_s
        self.link = link
        self.shelf = shelf
        self.signer = signer
        self.pace = pace
        self.deadline = deadline
        self.shown = shown
        self.rng = random.Random(seed)
        self.available = list(shelf.labels)
        self.lent: list[str] = []
        self.scans: list[Scan] = []
        self.walkups = 0

    def run(self) -> None:
        # Kiosks do not all start on the same beat.
        time.sleep(self.rng.uniform(0, self.pace.walkup_every_s))
        while time.perf_counter() < self.deadline and self.shelf.passes:
            self.walkups += 1
            if self.lent and (not self.available or self.rng.random() < 0.5):
                self._return()
            elif self.available:
                self._checkout()
            time.sleep(self.pace.between_walkups(self.rng))

    def _ask(self, event: CodeScan | SessionDone, step: str, expected: Reason) -> Scan:
        scan = Scan(self.link.kiosk_id, step, expected, self.link.send(event))
        self.scans.append(scan)
        give_up = scan.sent + self.give_up_s
        while True:
            answer = self.link.wait(event.event_id, min(give_up, time.perf_counter() + RESEND_S))
            if answer is not None:
                scan.answered, scan.reason = answer
                return scan
            if time.perf_counter() >= give_up:
                return scan
            scan.resends += 1
            self.link.send(event)  # the outbox re-sends with the same event id

    def _code(self, code: str) -> CodeScan:
        return CodeScan(
            event_id=uuid.uuid4().hex,
            kiosk_id=self.link.kiosk_id,
            code=code,
            scanned_at=datetime.now(UTC),
        )

    def _checkout(self) -> None:
        pass_id, member_id = self.shelf.passes.pop()
        code = self.signer.member_pass(pass_id, member_id, datetime.now(UTC) + PASS_LIFE)
        opened = self._ask(self._code(code), "pass", Reason.SESSION_OPENED)
        if opened.reason is not Reason.SESSION_OPENED:
            return  # the member walks away
        # Only now is it a used pass: a replay can never beat the member to it.
        self.shown.add(code)
        for _ in range(self.rng.randint(1, 2)):
            if not self.available:
                break
            time.sleep(self.pace.between_scans(self.rng))
            item_id = self.available.pop(self.rng.randrange(len(self.available)))
            scan = self._ask(self._code(self.shelf.labels[item_id]), "label", Reason.CHECKED_OUT)
            if scan.reason is Reason.CHECKED_OUT:
                self.lent.append(item_id)
            elif scan.reason in {Reason.ITEM_UNAVAILABLE, Reason.HOLD_PLACED, Reason.RESERVED}:
                pass  # taken by an answer this kiosk never heard: not used again
            elif scan.reason is not None:
                self.available.append(item_id)
        time.sleep(self.pace.between_scans(self.rng))
        done = SessionDone(
            event_id=uuid.uuid4().hex, kiosk_id=self.link.kiosk_id, scanned_at=datetime.now(UTC)
        )
        self._ask(done, "done", Reason.SESSION_CLOSED)

    def _return(self) -> None:
        for n in range(self.rng.randint(1, 2)):
            if not self.lent:
                break
            if n:
                time.sleep(self.pace.between_scans(self.rng))
            item_id = self.lent.pop(self.rng.randrange(len(self.lent)))
            scan = self._ask(self._code(self.shelf.labels[item_id]), "return", Reason.RETURNED)
            if scan.reason is Reason.RETURNED:
                self.available.append(item_id)


@dataclass
class AttackerLog:
    """What an attacking kiosk was told: verdicts by reason, when each reason first came."""

    sent: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)
    first: dict[str, float] = field(default_factory=dict)  # reason -> wall-clock time
    lock: threading.Lock = field(default_factory=threading.Lock)

    def heard(self, verdict: Verdict, _at: float) -> None:
        with self.lock:
            self.verdicts[verdict.reason.value] += 1
            self.first.setdefault(verdict.reason.value, time.time())


def forged(kind: str, rng: random.Random, label: str, shown: ShownPasses) -> str:
    """A code of ``kind``: a label with a wrong MAC, foreign QR text, or a used pass."""
    if kind == "used_pass" and (code := shown.latest()) is not None:
        return code
    if kind == "foreign":
        return rng.choice(FOREIGN_CODES)
    body, _, mac = label.rpartition(".")
    flipped = "A" if mac[0] != "A" else "B"
    return f"{body}.{flipped}{mac[1:]}"


class Forger(threading.Thread):
    """A kiosk showing forged codes a few times a second until the deadline, never waiting."""

    KINDS = ("bad_signature", "foreign", "used_pass")

    def __init__(
        self,
        link: KioskLink,
        log: AttackerLog,
        label: str,
        shown: ShownPasses,
        *,
        rate: float,
        deadline: float,
    ) -> None:
        super().__init__(name="forger", daemon=True)
        self.link = link
        self.log = log
        self.label = label
        self.shown = shown
        self.rate = rate
        self.deadline = deadline
        self.rng = random.Random(7)

    def run(self) -> None:
        n = 0
        start = time.perf_counter()
        while (now := time.perf_counter()) < self.deadline:
            due = start + n / self.rate
            if due > now:
                time.sleep(due - now)
                continue
            kind = self.KINDS[n % len(self.KINDS)]
            code = forged(kind, self.rng, self.label, self.shown)
            self.link.send(
                CodeScan(
                    event_id=uuid.uuid4().hex,
                    kiosk_id=self.link.kiosk_id,
                    code=code,
                    scanned_at=datetime.now(UTC),
                )
            )
            with self.log.lock:
                self.log.sent[kind] += 1
            n += 1
