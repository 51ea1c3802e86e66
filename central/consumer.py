"""Turns the scan stream into verdicts: fair batches of events, one transaction per batch.

Messages wait in one queue per kiosk, and batches are drawn from those queues in turn, so
a kiosk sending thousands of messages delays no other kiosk by more than its share of one
batch. Garbage is refused before any database work and counted in memory
(:mod:`central.abuse`); an event whose decision fails on its own is answered ``MALFORMED``
and dead-lettered, never retried forever; only a database that fails as a whole makes the
consumer wait and retry, dropping nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import prometheus_client
from pydantic import TypeAdapter, ValidationError

from broker import topics
from broker.errors import ContractError
from broker.ids import EventId
from broker.messages import (
    MAX_PAYLOAD_BYTES,
    AnyEvent,
    CodeScan,
    KioskState,
    KioskStatus,
    ProblemReport,
    Reason,
    SecurityAlert,
    Verdict,
    encode,
    parse_event,
    parse_message,
)
from central import abuse, ledger, scan_rounds
from central.abuse import NO_KIOSK, AbuseCounter, AbusePolicy, Drop
from central.clock import Clock
from central.fairqueue import FairQueue
from central.ledger import Outcome
from central.metrics import Metrics
from central.mqtt import Inbound
from central.publisher import Publisher
from central.security import Limits
from central.storage.base import AuditEntry, Store, Tx
from central.storage.postgres import PostgresStore
from central.tokens import DevicePass, Token, TokenSigner, fingerprint
from central.web.credentials import SqlHooks
from central.web.store import MembersData

log = logging.getLogger(__name__)

_EVENT_ID: TypeAdapter[str] = TypeAdapter(EventId)


@dataclass(slots=True)
class _Job:
    inbound: Inbound
    kiosk: str  # the topic's kiosk level (NO_KIOSK if it names none)
    event: AnyEvent | None = None
    token: Token | Reason | None = None
    refusal: ContractError | None = None


class _DeadLetter:
    """What deciding an event that failed on its own gives: answered already, to be acked."""


_DEAD = _DeadLetter()
_Result = Outcome | _DeadLetter | None


def _source(topic: str) -> str:
    """The kiosk a message came from, as its topic says (``NO_KIOSK`` if none)."""
    route = topics.route(topic)
    return route.kiosk_id if isinstance(route, topics.KioskRoute) else NO_KIOSK


def _is_status(topic: str) -> bool:
    return isinstance(topics.route(topic), topics.StatusRoute)


def _flat(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _flat(inner)
    else:
        yield exc


class Consumer:
    """Decides scans in fair batches and answers each kiosk."""

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
        abuse_policy: AbusePolicy | None = None,
        kiosk_backlog: int = 2000,
        kiosk_share: int = 32,
    ) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock
        self._out = publisher
        self._batch_max = batch_max
        self._limits = limits
        # One queue per kiosk. A kiosk may hold ``kiosk_backlog`` messages waiting (the
        # excess is shed: its outbox sends it again; an honest kiosk re-sending a few
        # hundred queued returns fits) and fill ``kiosk_share`` places of one batch.
        self._waiting: FairQueue[_Job] = FairQueue(kiosk_backlog, kiosk_share)
        self._in_hand = 0  # the batch being decided (or retried)
        self._wake = asyncio.Event()
        self.abuse = AbuseCounter(abuse_policy or AbusePolicy())
        self.abuse.on_block = self._blocked_now
        self._unwritten: list[AuditEntry] = []  # aggregated drop rows a failed flush kept
        self.metrics = metrics or Metrics()
        self._dropped: dict[str, prometheus_client.Counter] = {}
        self.counts: Counter[str] = Counter()
        # PostgreSQL's batches: how many, their events, rounds and statements (round trips).
        self.batching: Counter[str] = Counter()
        self.presence: dict[str, KioskStatus] = {}
        self.seen: dict[str, datetime] = {}  # when each kiosk's status last arrived
        self.on_verdict: Callable[[Verdict], None] | None = None
        # Told of each kiosk blocked for sending garbage, with when its block ends, the
        # moment it crosses the threshold, so the service can shut it out at the broker
        # too: a flood then stops at its source instead of costing central the reading of
        # every message.
        self.on_blocked: Callable[[str, datetime], None] | None = None
        # When the consumer last proved it was deciding (or idle and waiting): the
        # systemd watchdog is fed only while this is fresh.
        self.heartbeat = time.monotonic()
        # When a batch last finished, or the queue last went from empty to not: /ready
        # reports a consumer that has not moved for a while with scans waiting.
        self.progress = time.monotonic()
        # Rotating phone passes get their single-use row inside the scan's transaction.
        self._devices = MembersData(cast(SqlHooks, store))

    def submit(self, inbound: Inbound) -> None:
        """Take in one message (called on the event loop for every message: cheap).

        Statuses are taken in, and garbage refused, at once: only events to decide wait,
        so a flood of garbage neither waits for batch places nor holds the broker's
        inflight window (Mosquitto 2.0.11 reorders a subscriber's messages once that
        window is full; fixed in 2.0.13, mosquitto#2306).
        """
        route = topics.route(inbound.topic)
        if isinstance(route, topics.StatusRoute):
            self._presence(inbound)
            self._out.ack(inbound)
            return
        kiosk = route.kiosk_id if isinstance(route, topics.KioskRoute) else NO_KIOSK
        if not inbound.payload:
            self._drop(inbound, kiosk, Drop.EMPTY)
            return
        if inbound.retain:
            self._retained(inbound, kiosk)
            return
        job = self._admitted(inbound, kiosk)
        if job is None:
            return
        if self.depth == 0:
            self.progress = time.monotonic()
        if not self._waiting.put(kiosk, job):
            self._drop(inbound, kiosk, Drop.SHED)
            return
        self._wake.set()

    def _admitted(self, inbound: Inbound, kiosk: str) -> _Job | None:
        """The event to decide, or None if it was dropped or refused (and acked)."""
        if not self.abuse.admit(kiosk):
            self._drop(inbound, kiosk, Drop.BLOCKED)
            return None
        job = self._prepare(inbound)
        if job.refusal is not None:
            self._refuse(job, job.refusal)
            return None
        return job

    @property
    def depth(self) -> int:
        """Messages waiting to be decided (the batch in hand included)."""
        return len(self._waiting) + self._in_hand

    def stalled_s(self) -> float:
        """How long messages have waited with no batch finished (0 when none wait)."""
        return 0.0 if self.depth == 0 else time.monotonic() - self.progress

    async def run(self) -> None:
        """Decide batches forever; a failing database delays answers, it never drops scans."""
        while True:
            if not self._waiting:
                self._wake.clear()
                try:
                    # Wake at least once a second so the heartbeat shows the loop is alive.
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                except TimeoutError:
                    self.heartbeat = time.monotonic()
                    await self.flush_drops()
                    continue
            jobs = self._waiting.take(self._batch_max)
            self._in_hand = len(jobs)
            delay = 0.1
            while True:
                try:
                    await self._settle(jobs)
                    self.heartbeat = self.progress = time.monotonic()
                    self._in_hand = 0
                    break
                except Exception:
                    # Only a systemic fault gets here (one event's own failure is isolated
                    # in _settle). No event left was acknowledged, and a retry of events
                    # that did commit reads their stored verdicts back: retrying is always
                    # safe.
                    self.counts["batch_retry"] += 1
                    log.exception("batch of %s failed; retrying in %.1fs", len(jobs), delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            await self.flush_drops()

    async def handle(self, batch: Sequence[Inbound]) -> None:
        """Decide a batch of messages at once, as :meth:`run` does (tests drive this)."""
        await self._settle(self._triage(batch))

    def _triage(self, batch: Sequence[Inbound]) -> list[_Job]:
        """Take in statuses and refuse what breaks the contract (both acked at once); the
        events to decide, parsed and verified."""
        jobs: list[_Job] = []
        for inbound in batch:
            if _is_status(inbound.topic):
                self._presence(inbound)
                self._out.ack(inbound)
                continue
            job = self._prepare(inbound)
            if job.refusal is not None:
                self._refuse(job, job.refusal)
            else:
                jobs.append(job)
        return jobs

    async def _settle(self, jobs: list[_Job]) -> None:
        """Decide ``jobs`` in the database, answer each kiosk, then ack."""
        if not jobs:
            return
        now = self._clock.now()
        with self.metrics.checkout_duration.time():
            if self._store.group_commit:
                outcomes = await self._decide_together(jobs, now)
            else:
                outcomes = await self._decide_apart(jobs, now)
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome is None:
                # Decided nothing through repeated conflicts: leave it unacked so the broker
                # hands it out again after a reconnect, rather than answer wrongly.
                self.counts["fault"] += 1
                continue
            if isinstance(outcome, Outcome):
                self._decided(job, outcome)
            self._out.ack(job.inbound)

    def _decided(self, job: _Job, outcome: Outcome) -> None:
        """Answer one decided event, measure it, and note what it says of its kiosk."""
        self._answer(outcome)
        if log.isEnabledFor(logging.DEBUG):  # one line per scan: off on the hot path
            _log_verdict(job, outcome)
        self.metrics.verdict(
            outcome.verdict.reason,
            replayed=outcome.replayed,
            seconds=time.monotonic() - job.inbound.received,
        )
        # A kiosk answered KIOSK_BLOCKED is not held here: a forged-code cool-down is a
        # person at a camera (a few scans a minute, each answered, and the next member's
        # pass lifts it); only this instance's own garbage block drops scans unread.
        if not outcome.replayed and outcome.verdict.reason is not Reason.KIOSK_BLOCKED:
            self.abuse.release(job.kiosk)  # unblocked, here or elsewhere

    async def _decide_together(self, jobs: list[_Job], now: datetime) -> list[_Result]:
        """One transaction for the batch (group commit).

        Tried first without a savepoint per event: on SQLite each costs a statement journal
        opened and released, about a sixth of the ledger's CPU per scan, and nearly every
        batch has no event that fails. If any does, the whole transaction is rolled back
        (nothing was answered or acknowledged yet) and the batch is decided again with a
        savepoint per event, so one event's failure stays its own.
        """

        async def hopeful(tx: Tx) -> list[_Result]:
            outcomes: list[_Result] = []
            for job in jobs:
                try:
                    outcomes.append(await self._decide(tx, job, now))
                except Exception as exc:
                    if self._store.is_conflict(exc):
                        self._conflict(job, 1)
                    raise
            return outcomes

        try:
            return await self._store.run_write(hopeful)
        except Exception as exc:
            if await self._systemic(exc):
                raise
        self.counts["batch_careful"] += 1
        return await self._decide_carefully(jobs, now)

    async def _decide_carefully(self, jobs: list[_Job], now: datetime) -> list[_Result]:
        """One transaction for the batch, a savepoint per event."""

        async def batch(tx: Tx) -> list[_Result]:
            outcomes: list[_Result] = []
            for job in jobs:
                for attempt in (1, 2):
                    try:
                        async with self._store.savepoint(tx):
                            outcomes.append(await self._decide(tx, job, now))
                        break
                    except Exception as exc:
                        if not self._store.is_conflict(exc):
                            raise  # one event's fault, or the database's: sorted out below
                        self._conflict(job, attempt)
                else:
                    outcomes.append(None)
            return outcomes

        try:
            return await self._store.run_write(batch)
        except Exception as exc:
            if await self._systemic(exc):
                raise
        # One event failed in a way its savepoint could not contain (or the batch's commit
        # did): decide each alone, so only the event that fails alone is dead-lettered.
        self.counts["batch_split"] += 1
        return [await self._decide_isolated(job, now) for job in jobs]

    async def _decide_apart(self, jobs: list[_Job], now: datetime) -> list[_Result]:
        """PostgreSQL: the batch in one transaction, a statement per round
        (:mod:`central.scan_rounds`); the kiosks it leaves out, or all if it fails, one
        short transaction per event."""
        if not isinstance(self._store, PostgresStore):
            return await self._decide_each(jobs, now)
        # Problem reports and phone passes stay on the per-event path (rare; a report's
        # item is only known from the return it names, a phone pass writes its own pass
        # row first), and with them the rest of their kiosk's events, to keep its order.
        aside = {job.kiosk for job in jobs if _alone(job)}
        together = [i for i, job in enumerate(jobs) if job.kiosk not in aside]
        outcomes: dict[int, _Result] = {}
        if together:
            batch = [jobs[i] for i in together]
            decided = await self._decide_rounds(self._store, batch, now)
            outcomes.update(zip(together, decided, strict=True))
        rest = [i for i in range(len(jobs)) if i not in outcomes]
        if rest:
            each = await self._decide_each([jobs[i] for i in rest], now)
            outcomes.update(zip(rest, each, strict=True))
        return [outcomes[i] for i in range(len(jobs))]

    async def _decide_rounds(
        self, store: PostgresStore, jobs: list[_Job], now: datetime
    ) -> list[_Result]:
        """``jobs`` in one transaction; if any step fails, each in its own transaction."""
        scans = [(job.event, job.token) for job in jobs if job.event is not None]
        try:
            batched = await scan_rounds.decide(store, scans, now, self._limits, self._clock.now)
        except Exception as exc:
            if await self._systemic(exc):
                raise
            if store.is_conflict(exc):
                # The batch's locks should have kept every constraint and deadlock away.
                self.counts["conflict"] += 1
                self.metrics.conflicts.inc()
                log.warning("a batch of %s hit a conflict", len(jobs), exc_info=True)
            else:
                log.info("a batch of %s failed; deciding each alone", len(jobs), exc_info=True)
            self.counts["batch_split"] += 1
            return await self._decide_each(jobs, now)
        self.batching["batches"] += 1
        self.batching["events"] += len(jobs)
        self.batching["rounds"] += batched.rounds
        self.batching["statements"] += batched.statements
        return list(batched.outcomes)

    async def _decide_each(self, jobs: list[_Job], now: datetime) -> list[_Result]:
        """A short transaction per event; kiosks in parallel, each kiosk's events in order."""
        outcomes: dict[int, _Result] = {}
        by_kiosk: dict[str, list[int]] = {}
        for index, job in enumerate(jobs):
            by_kiosk.setdefault(job.inbound.topic, []).append(index)

        async def one_kiosk(indexes: list[int]) -> None:
            for index in indexes:
                outcomes[index] = await self._decide_isolated(jobs[index], now)

        async with asyncio.TaskGroup() as group:
            for indexes in by_kiosk.values():
                group.create_task(one_kiosk(indexes))
        return [outcomes[index] for index in range(len(jobs))]

    async def _decide_isolated(self, job: _Job, now: datetime) -> _Result:
        """Decide one event in its own transaction; if it fails on its own, dead-letter it."""
        try:
            return await self._decide_alone(job, now)
        except Exception as exc:
            if await self._systemic(exc):
                raise
            return self._dead_letter(job, exc)

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

    async def _systemic(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the database failing as a whole (wait and retry, drop nothing)
        rather than one event failing on its own."""
        if any(self._store.is_unavailable(inner) for inner in _flat(exc)):
            return True
        try:
            async with asyncio.timeout(2.0):
                await self._store.ping()
        except Exception:  # a database that cannot answer a ping is the fault, not the event
            return True
        return False

    def _dead_letter(self, job: _Job, exc: BaseException) -> _DeadLetter:
        """Answer an event that failed on its own ``MALFORMED`` and count it: retried, it
        would fail again and hold up everything behind it."""
        event = job.event
        assert event is not None  # only parsed events reach a decision
        self.counts["dead_letter"] += 1
        self.metrics.dropped.labels(kind=Drop.POISON.value).inc()
        self.abuse.note(job.kiosk, Drop.POISON)
        log.error(
            "event %s from %s failed on its own (%s); answered MALFORMED",
            event.event_id,
            event.kiosk_id,
            type(exc).__name__,
            exc_info=exc,
            extra={"event_id": event.event_id, "kiosk_id": event.kiosk_id},
        )
        verdict = self._refusal(event.event_id, event.kiosk_id, Reason.MALFORMED)
        self._out.publish(topics.verdict(event.kiosk_id), encode(verdict))
        return _DEAD

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
        assert job.event is not None  # refused messages never reach the database
        if isinstance(job.token, DevicePass):
            await self._devices.materialise(tx, job.token, now)
        return await ledger.apply(tx, job.event, job.token, now, self._limits)

    def _prepare(self, inbound: Inbound) -> _Job:
        job = _Job(inbound, _source(inbound.topic))
        try:
            kiosk_id = topics.kiosk_of(inbound.topic)
            job.event = parse_event(kiosk_id, inbound.payload)
        except Exception as exc:  # bad input of any shape is refused, never fatal
            if not isinstance(exc, ContractError):
                log.exception("unexpected parse failure on %s", inbound.topic[:128])
                exc = ContractError("bad_fields", type(exc).__name__)
            job.refusal = exc
            return job
        if isinstance(job.event, CodeScan):
            try:
                job.token = self._signer.verify(job.event.code, self._clock.now())
            except Exception:  # a code that breaks the verifier is refused, never fatal
                log.exception("code from %s could not be verified", job.kiosk)
                job.token = Reason.MALFORMED
        return job

    def _refuse(self, job: _Job, exc: ContractError) -> None:
        """A message that breaks the contract: counted, answered MALFORMED from memory
        (while the kiosk's answer budget lasts), acked; never a database row of its own."""
        self.counts[f"malformed.{exc.reason}"] += 1
        # kiosk_mismatch: never answer on behalf of another kiosk.
        answer = None if exc.reason == "kiosk_mismatch" else Reason.MALFORMED
        self._drop(job.inbound, job.kiosk, exc.reason, answer=answer, metered=False)

    def _retained(self, inbound: Inbound, kiosk: str) -> None:
        """A retained scan is never decided (it would be handed to every central that
        subscribes, for ever); it is counted and cleared from the broker."""
        if kiosk != NO_KIOSK:
            # An empty retained message removes it; it comes back to us empty, and an
            # empty scan is ignored.
            self._out.publish(topics.scan(kiosk), b"", retain=True)
        self._drop(inbound, kiosk, Drop.RETAINED, answer=Reason.MALFORMED)

    def _drop(
        self,
        inbound: Inbound,
        kiosk: str,
        kind: str,
        *,
        answer: Reason | None = None,
        metered: bool = True,
    ) -> None:
        """Count a message that will not be decided, answer it if the budget allows, ack it."""
        if metered:
            self.counts[kind] += 1
        counter = self._dropped.get(kind)
        if counter is None:  # the label lookup costs more than the rest of a drop
            counter = self._dropped[kind] = self.metrics.dropped.labels(kind=kind)
        counter.inc()
        if self.abuse.note(kiosk, kind) and answer is not None and kiosk != NO_KIOSK:
            event_id = _event_id_of(inbound.payload)
            if event_id is not None:
                verdict = self._refusal(event_id, kiosk, answer)
                self._out.publish(topics.verdict(kiosk), encode(verdict))
        self._out.ack(inbound)

    def _blocked_now(self, kiosk: str) -> None:
        """A kiosk just crossed the garbage threshold: the block holds from this message on.

        What it has queued is dropped unread and it is shut out at the broker at once; the
        database block, its audit rows and the alert follow at the flush, which this wakes
        the loop for (an honest scan must not wait behind the flood's first moments).
        """
        for job in self._waiting.drop(kiosk):
            self._drop(job.inbound, kiosk, Drop.BLOCKED)
        if self.on_blocked is not None:
            self.on_blocked(kiosk, self._clock.now() + self.abuse.policy.block_for)
        self._wake.set()

    def _refusal(self, event_id: str, kiosk_id: str, reason: Reason) -> Verdict:
        """A verdict made in memory, for a message the database never sees."""
        return Verdict(
            event_id=event_id,
            kiosk_id=kiosk_id,
            reason=reason,
            accepted=False,
            session_open=False,
            decided_at=self._clock.now(),
        )

    async def flush_drops(self, *, everything: bool = False) -> None:
        """Write the closed windows' aggregated ``scan.dropped`` rows and any new blocks.

        A failure keeps them for the next try; it never stops the consumer.
        """
        blocks = self.abuse.take_blocks()
        rows = self.abuse.due(everything=everything)
        if not (blocks or rows or self._unwritten):
            return
        now = self._clock.now()
        entries = self._unwritten + [row.entry(now) for row in rows]
        alerts: list[SecurityAlert] = []
        try:
            async with self._store.write() as tx:
                for kiosk_id in blocks:
                    counts = self.abuse.counts(kiosk_id)
                    alert = await abuse.block(tx, kiosk_id, counts, self.abuse.policy, now)
                    if alert is not None:
                        alerts.append(alert)
                for entry in entries:
                    await tx.audit(entry)
        except Exception:
            log.warning(
                "could not write %s dropped-message rows; kept", len(entries), exc_info=True
            )
            # Bounded: one row per kiosk per window, and the oldest go first.
            self._unwritten = entries[-10_000:]
            self.abuse.requeue_blocks(blocks)
            return
        self._unwritten = []
        for alert in alerts:
            self.metrics.security_alerts.labels(kind=alert.kind).inc()
            self._out.publish(topics.ALERTS, encode(alert))
            log.warning("security alert %s at kiosk %s", alert.kind, alert.kiosk_id)

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
        except Exception:  # ContractError, or anything else: a bad status never stops us
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


def _alone(job: _Job) -> bool:
    """Whether ``job`` is decided in its own transaction even on PostgreSQL."""
    return isinstance(job.event, ProblemReport) or isinstance(job.token, DevicePass)


def _event_id_of(payload: bytes) -> str | None:
    """The event id of a refused scan, if it has a valid one (to answer it by)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        data = json.loads(payload)
        return _EVENT_ID.validate_python(data["event_id"]) if isinstance(data, dict) else None
    except (ValueError, KeyError, TypeError, RecursionError, ValidationError):
        return None


# Defined in central/publisher.py; it is still importable from here.
__all__ = ["Consumer", "Publisher"]
