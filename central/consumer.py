"""Turns the scan stream into verdicts: batches of events, one transaction per batch."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, cast

from broker import topics
from broker.errors import ContractError
from broker.messages import (
    CodeScan,
    KioskState,
    KioskStatus,
    Reason,
    SessionDone,
    Verdict,
    encode,
    parse_event,
    parse_message,
)
from central import ledger
from central.clock import Clock
from central.ledger import Outcome
from central.metrics import Metrics
from central.mqtt import Inbound
from central.security import Limits
from central.storage.base import AuditEntry, Store, Tx
from central.tokens import DevicePass, Token, TokenSigner, fingerprint
from central.web.store import MembersData, SqlHooks

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where the consumer sends verdicts and retained state (the MQTT link in service)."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        """Send one message."""

    def ack(self, message: Inbound) -> None:
        """Acknowledge one inbound message."""


@dataclass(slots=True)
class _Job:
    inbound: Inbound
    event: CodeScan | SessionDone | None = None
    token: Token | Reason | None = None
    refusal: ContractError | None = None


class Consumer:
    """Decides scans in batches and answers each kiosk."""

    def __init__(
        self,
        store: Store,
        signer: TokenSigner,
        clock: Clock,
        publisher: Publisher,
        *,
        batch_max: int = 256,
        metrics: Metrics | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock
        self._out = publisher
        self._batch_max = batch_max
        self._limits = limits
        self._queue: asyncio.Queue[Inbound] = asyncio.Queue()
        self.metrics = metrics or Metrics()
        self.counts: Counter[str] = Counter()
        self.presence: dict[str, KioskStatus] = {}
        self.seen: dict[str, datetime] = {}  # when each kiosk's status last arrived
        self.on_verdict: Callable[[Verdict], None] | None = None
        # When the consumer last proved it was deciding (or idle and waiting): the
        # systemd watchdog is fed only while this is fresh.
        self.heartbeat = time.monotonic()
        # Rotating phone passes get their single-use row inside the scan's transaction.
        self._devices = MembersData(cast(SqlHooks, store))

    def submit(self, inbound: Inbound) -> None:
        """Queue one inbound message (called on the event loop)."""
        self._queue.put_nowait(inbound)

    @property
    def depth(self) -> int:
        """Messages waiting to be decided."""
        return self._queue.qsize()

    async def run(self) -> None:
        """Decide batches forever; a failing database delays answers, it never drops scans."""
        while True:
            try:
                # Wake at least once a second so the heartbeat shows the loop is alive.
                first = await asyncio.wait_for(self._queue.get(), timeout=1.0)
            except TimeoutError:
                self.heartbeat = time.monotonic()
                continue
            batch = [first]
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            delay = 0.1
            while True:
                try:
                    await self.handle(batch)
                    self.heartbeat = time.monotonic()
                    break
                except Exception:
                    # Nothing in the batch was acknowledged, and a retry of events that did
                    # commit just reads their stored verdicts back: retrying is always safe.
                    self.counts["batch_retry"] += 1
                    log.exception("batch of %s failed; retrying in %.1fs", len(batch), delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)

    async def handle(self, batch: Sequence[Inbound]) -> None:
        """Decide one batch: parse, verify, one transaction, publish, then ack."""
        jobs: list[_Job] = []
        for inbound in batch:
            if inbound.topic.endswith("/status"):
                self._presence(inbound)
                self._out.ack(inbound)
            else:
                jobs.append(self._prepare(inbound))
        if not jobs:
            return
        now = self._clock.now()
        with self.metrics.checkout_duration.time():
            if self._store.group_commit:
                outcomes = await self._decide_together(jobs, now)
            else:
                outcomes = await self._decide_apart(jobs, now)
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome is not None:
                self._answer(outcome)
                if log.isEnabledFor(logging.DEBUG):  # one line per scan: off on the hot path
                    _log_verdict(job, outcome)
                self.metrics.verdict(
                    outcome.verdict.reason,
                    replayed=outcome.replayed,
                    seconds=time.monotonic() - job.inbound.received,
                )
            elif job.event is not None:
                # Decided nothing through a fault: leave it unacked so the broker hands it
                # out again after a reconnect, rather than answer wrongly.
                self.counts["fault"] += 1
                continue
            self._out.ack(job.inbound)

    async def _decide_together(self, jobs: list[_Job], now: datetime) -> list[Outcome | None]:
        """One transaction for the batch (group commit), a savepoint per event."""

        async def batch(tx: Tx) -> list[Outcome | None]:
            outcomes: list[Outcome | None] = []
            for job in jobs:
                for attempt in (1, 2):
                    try:
                        async with self._store.savepoint(tx):
                            outcomes.append(await self._decide(tx, job, now))
                        break
                    except Exception as exc:
                        if not self._store.is_conflict(exc):
                            raise  # the database itself failed: retry the batch
                        self._conflict(job, attempt)
                else:
                    outcomes.append(None)
            return outcomes

        return await self._store.run_write(batch)

    async def _decide_apart(self, jobs: list[_Job], now: datetime) -> list[Outcome | None]:
        """A short transaction per event; kiosks in parallel, each kiosk's events in order."""
        outcomes: dict[int, Outcome | None] = {}
        by_kiosk: dict[str, list[int]] = {}
        for index, job in enumerate(jobs):
            by_kiosk.setdefault(job.inbound.topic, []).append(index)

        async def one_kiosk(indexes: list[int]) -> None:
            for index in indexes:
                outcomes[index] = await self._decide_alone(jobs[index], now)

        async with asyncio.TaskGroup() as group:
            for indexes in by_kiosk.values():
                group.create_task(one_kiosk(indexes))
        return [outcomes[index] for index in range(len(jobs))]

    async def _decide_alone(self, job: _Job, now: datetime) -> Outcome | None:
        for attempt in (1, 2, 3):
            try:
                async with self._store.write() as tx:
                    return await self._decide(tx, job, now)
            except Exception as exc:
                if not self._store.is_conflict(exc):
                    raise
                self._conflict(job, attempt)
        return None

    def _conflict(self, job: _Job, attempt: int) -> None:
        # A constraint refused a write the rules allowed, or the database broke a deadlock:
        # a logic slip or a race the locks should have prevented. The event's changes were
        # undone; on retry the rules see the winner's rows.
        self.counts["conflict"] += 1
        self.metrics.conflicts.inc()
        event_id = job.event.event_id if job.event else "?"
        log.warning(
            "event %s hit a conflict (attempt %s)",
            event_id,
            attempt,
            exc_info=True,
            extra={"event_id": event_id, "kiosk_id": job.event.kiosk_id if job.event else None},
        )

    async def _decide(self, tx: Tx, job: _Job, now: datetime) -> Outcome | None:
        if job.event is None:
            await tx.audit(
                AuditEntry(
                    at=now,
                    actor="system",
                    action="scan.dropped",
                    reason=Reason.MALFORMED,
                    detail={"topic": job.inbound.topic[:128], "why": str(job.refusal)[:200]},
                )
            )
            return None
        if isinstance(job.token, DevicePass):
            await self._devices.materialise(tx, job.token, now)
        return await ledger.apply(tx, job.event, job.token, now, self._limits)

    def _prepare(self, inbound: Inbound) -> _Job:
        job = _Job(inbound)
        try:
            kiosk_id = topics.kiosk_of(inbound.topic)
            job.event = parse_event(kiosk_id, inbound.payload)
        except Exception as exc:  # bad input of any shape is refused, never fatal
            if not isinstance(exc, ContractError):
                log.exception("unexpected parse failure on %s", inbound.topic[:128])
                exc = ContractError("bad_fields", type(exc).__name__)
            self.counts[f"malformed.{exc.reason}"] += 1
            self.metrics.dropped.labels(kind=exc.reason).inc()
            job.refusal = exc
            job.event = self._salvage(inbound, exc)
            job.token = Reason.MALFORMED
            return job
        if isinstance(job.event, CodeScan):
            job.token = self._signer.verify(job.event.code, self._clock.now())
        return job

    def _salvage(self, inbound: Inbound, exc: ContractError) -> CodeScan | None:
        """Keep enough of a broken scan to answer MALFORMED to the kiosk that sent it."""
        if exc.reason == "kiosk_mismatch":
            return None  # never answer on behalf of another kiosk
        try:
            kiosk_id = topics.kiosk_of(inbound.topic)
            data = json.loads(inbound.payload)
            return CodeScan(
                event_id=data["event_id"], kiosk_id=kiosk_id, code="", scanned_at=self._clock.now()
            )
        except Exception:  # any shape of garbage just means "drop it"
            return None

    def _answer(self, outcome: Outcome) -> None:
        verdict = outcome.verdict
        self.counts["replayed" if outcome.replayed else verdict.reason.value] += 1
        self._out.publish(topics.verdict(verdict.kiosk_id), outcome.payload)
        for availability in outcome.changed:
            # Retained, so QoS 0 is enough: a kiosk that misses one live copy gets the
            # current one when it resubscribes; the broker skips a PUBACK per change.
            self._out.publish(
                topics.availability(availability.shelf_id, availability.item_id),
                encode(availability),
                retain=True,
                qos=0,
            )
        for alert in outcome.alerts:
            self.metrics.security_alerts.labels(kind=alert.kind).inc()
            self._out.publish(topics.ALERTS, encode(alert))
            log.warning("security alert %s at kiosk %s", alert.kind, alert.kiosk_id)
        if self.on_verdict is not None:
            self.on_verdict(verdict)

    def _presence(self, inbound: Inbound) -> None:
        try:
            kiosk_id = topics.kiosk_of(inbound.topic)
            if not inbound.payload:
                self.presence.pop(kiosk_id, None)
                self.seen.pop(kiosk_id, None)
                return
            status = parse_message(KioskStatus, inbound.payload)
        except ContractError:
            self.counts["malformed.status"] += 1
            return
        if status.kiosk_id == kiosk_id:
            before = self.presence.get(kiosk_id)
            went_away = before is not None and before.state is KioskState.ONLINE
            if went_away and status.state is not KioskState.ONLINE:
                self.metrics.kiosk_disconnects.inc()
            self.presence[kiosk_id] = status
            # A retained copy is old news (central just subscribed): the kiosk's own stamp
            # is the best guess of when it was last heard, for a last will a lower bound.
            self.seen[kiosk_id] = status.at if inbound.retain else self._clock.now()


def _log_verdict(job: _Job, outcome: Outcome) -> None:
    verdict = outcome.verdict
    code = job.event.code if isinstance(job.event, CodeScan) else None
    log.debug(
        "verdict %s%s",
        verdict.reason.value,
        " (repeated)" if outcome.replayed else "",
        extra={
            "kiosk_id": verdict.kiosk_id,
            "event_id": verdict.event_id,
            "member_id": outcome.member_id,
            "item_id": verdict.item_id,
            "code": fingerprint(code) if code else None,  # never the code itself
        },
    )
