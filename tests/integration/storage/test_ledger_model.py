"""A model of the walk-up rules, against random walk-ups, on both stores.

Hypothesis drives passes, labels, done presses, redeliveries and waits at two kiosks, and
checks every verdict and the database against a small model, circulation included: a
label scanned in a session renews the member's own loan (to the renewal limit, refused
while someone waits), places a hold on someone else's, and a return hands the item to the
first member waiting (only they may take it; ready holds never run out here, since nobody
was told). Each example gets its own
store: a new SQLite file, or the run's one PostgreSQL database emptied (a new database per
example would cost more than the example itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import event as record_event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from broker.messages import CodeScan, Reason, SessionDone, Verdict
from central import ledger
from central.clock import FakeClock
from central.storage.postgres import PostgresStore
from testkit.postgres import fresh_database
from tests.integration.storage.support import empty_postgres
from tests.unit.central.support import (
    ADA,
    GRACE,
    ITEMS,
    KIOSK_A,
    KIOSK_B,
    LIMITS,
    NAMES,
    SESSION_TIMEOUT_S,
    AnyStore,
    code_scan,
    decide,
    execute,
    issue_pass,
    make_signer,
    open_store,
    query,
    seed,
    session_done,
)

TIMEOUT = timedelta(seconds=SESSION_TIMEOUT_S)
RENEWAL_LIMIT = 2  # the default policy's
# The verdicts that republish the item's availability.
_CHANGES_AVAILABILITY = {
    Reason.CHECKED_OUT,
    Reason.RETURNED,
    Reason.RETURNED_TO_HOLD,
    Reason.RENEWED,
}
# A PostgreSQL step costs about three times a SQLite one: 30 examples (750 steps) take it
# some 5 s on an idle machine, well inside the suite's budget.
EXAMPLES = {"sqlite": 40, "postgres": 30}
STEPS = 25


@dataclass
class Bench:
    """What one run of the machine shares across examples: an event loop and a database."""

    loop: asyncio.AbstractEventLoop
    root: Path
    dsn: str | None  # None: SQLite, a new file per example

    async def fresh_store(self) -> tuple[AnyStore, Path | None]:
        """An empty, migrated store for one example, and its folder to remove (SQLite)."""
        if self.dsn is None:
            folder = Path(tempfile.mkdtemp(prefix="example-", dir=self.root))
            return await open_store(folder / "central.db"), folder
        store = await PostgresStore(self.dsn, min_size=1, max_size=2).open()
        await store.migrate()  # a no-op after the first example
        await empty_postgres(store)
        return store, None


@dataclass
class ModelSession:
    member_id: str
    expires_at: datetime


KIOSKS = st.sampled_from([KIOSK_A, KIOSK_B])
MEMBERS = st.sampled_from([ADA, GRACE])


class WalkUps(RuleBasedStateMachine):
    """Random passes, labels, done presses, redeliveries and waits at two kiosks."""

    bench: ClassVar[Bench]  # each test run sets it on a subclass of its own

    def __init__(self) -> None:
        super().__init__()
        self.loop = self.bench.loop
        self.clock = FakeClock()
        self.signer = make_signer()
        self.limits = {**LIMITS, ADA: 1}
        self.store, self.folder = self.loop.run_until_complete(self.bench.fresh_store())
        self.loop.run_until_complete(self._seed())
        self.holder: dict[str, str | None] = dict.fromkeys(ITEMS)
        self.waiting: dict[str, list[str]] = {item_id: [] for item_id in ITEMS}
        self.ready: dict[str, str | None] = dict.fromkeys(ITEMS)
        self.renewals: dict[str, int] = dict.fromkeys(ITEMS, 0)
        self.sessions: dict[str, ModelSession | None] = {KIOSK_A: None, KIOSK_B: None}
        self.used_passes: list[str] = []
        self.history: list[tuple[CodeScan | SessionDone, Verdict]] = []

    async def _seed(self) -> None:
        await seed(self.store, self.clock.now())
        # A limit of one for Ada makes LIMIT_REACHED reachable in a few steps.
        await execute(
            self.store,
            "UPDATE members SET checkout_limit = ? WHERE member_id = ?",
            self.limits[ADA],
            ADA,
        )

    def _query(self, statement: str) -> list[tuple[Any, ...]]:
        return self.loop.run_until_complete(query(self.store, statement))

    def teardown(self) -> None:
        try:
            self.loop.run_until_complete(self.store.close())
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)

    def _apply(self, event: CodeScan | SessionDone) -> ledger.Outcome:
        outcome = self.loop.run_until_complete(
            decide(self.store, self.signer, event, self.clock.now())
        )
        if not outcome.replayed:
            self.history.append((event, outcome.verdict))
        return outcome

    def _session(self, kiosk_id: str) -> ModelSession | None:
        session = self.sessions[kiosk_id]
        if session is None or session.expires_at <= self.clock.now():
            return None
        return session

    def _check(self, outcome: ledger.Outcome, expected: Reason, kiosk_id: str) -> None:
        verdict = outcome.verdict
        record_event(f"reason {expected.value}")  # shown by --hypothesis-show-statistics
        assert not outcome.replayed
        assert verdict.reason is expected, (verdict.reason, expected)
        assert verdict.accepted is expected.accepted
        session = self._session(kiosk_id)
        assert verdict.session_open is (session is not None)
        if session is not None:
            assert verdict.session_expires_at == session.expires_at

    # Start with a session somewhere so that checkouts, limits and conflicts come up often.
    @initialize(kiosk_id=KIOSKS, member_id=MEMBERS)
    def first_pass(self, kiosk_id: str, member_id: str) -> None:
        self.show_new_pass(kiosk_id, member_id)

    @rule(kiosk_id=KIOSKS, member_id=MEMBERS)
    def show_new_pass(self, kiosk_id: str, member_id: str) -> None:
        _, code = self.loop.run_until_complete(
            issue_pass(self.store, self.signer, member_id, self.clock.now())
        )
        outcome = self._apply(code_scan(kiosk_id, code, self.clock.now()))
        self.sessions[kiosk_id] = ModelSession(member_id, self.clock.now() + TIMEOUT)
        self.used_passes.append(code)
        self._check(outcome, Reason.SESSION_OPENED, kiosk_id)
        assert outcome.verdict.member_name == NAMES[member_id]

    @precondition(lambda self: bool(self.used_passes))
    @rule(kiosk_id=KIOSKS, index=st.integers(min_value=0))
    def show_used_pass(self, kiosk_id: str, index: int) -> None:
        code = self.used_passes[index % len(self.used_passes)]
        outcome = self._apply(code_scan(kiosk_id, code, self.clock.now()))
        self._check(outcome, Reason.ALREADY_USED, kiosk_id)

    # Queued (offline) scans are the exception at a kiosk, so draw them less often.
    @rule(
        kiosk_id=KIOSKS,
        item_id=st.sampled_from(ITEMS),
        queued=st.sampled_from([False, False, False, True]),
    )
    def scan_label(self, kiosk_id: str, item_id: str, queued: bool) -> None:
        now = self.clock.now()
        outcome = self._apply(
            code_scan(kiosk_id, self.signer.label(item_id, 1), now, queued=queued)
        )
        session = self._session(kiosk_id)
        if session is None or queued:
            expected = self._return(item_id, queued=queued)
        else:
            expected = self._in_session(item_id, session, now)
        self._check(outcome, expected, kiosk_id)
        assert outcome.verdict.item_id == item_id
        assert [a.item_id for a in outcome.changed] == (
            [item_id] if expected in _CHANGES_AVAILABILITY else []
        )

    def _return(self, item_id: str, *, queued: bool) -> Reason:
        if self.holder[item_id] is None:
            return Reason.NOT_CHECKED_OUT if queued else Reason.NO_SESSION
        self.holder[item_id] = None
        if not self.waiting[item_id]:
            return Reason.RETURNED
        self.ready[item_id] = self.waiting[item_id].pop(0)
        return Reason.RETURNED_TO_HOLD

    def _renew(self, item_id: str, session: ModelSession, now: datetime) -> Reason:
        if self.waiting[item_id]:
            return Reason.HOLD_WAITING
        if self.renewals[item_id] >= RENEWAL_LIMIT:
            return Reason.RENEWAL_LIMIT
        self.renewals[item_id] += 1
        session.expires_at = now + TIMEOUT
        return Reason.RENEWED

    def _in_session(self, item_id: str, session: ModelSession, now: datetime) -> Reason:
        member_id, holder = session.member_id, self.holder[item_id]
        if holder == member_id:
            return self._renew(item_id, session, now)
        if holder is not None:
            if member_id in self.waiting[item_id]:
                return Reason.ITEM_UNAVAILABLE
            self.waiting[item_id].append(member_id)
            session.expires_at = now + TIMEOUT
            return Reason.HOLD_PLACED
        if self.ready[item_id] not in {None, member_id}:
            return Reason.RESERVED
        if sum(h == member_id for h in self.holder.values()) >= self.limits[member_id]:
            return Reason.LIMIT_REACHED
        self.holder[item_id] = member_id
        self.ready[item_id] = None
        self.renewals[item_id] = 0
        session.expires_at = now + TIMEOUT
        return Reason.CHECKED_OUT

    @rule(kiosk_id=KIOSKS)
    def press_done(self, kiosk_id: str) -> None:
        outcome = self._apply(session_done(kiosk_id, self.clock.now()))
        self.sessions[kiosk_id] = None
        self._check(outcome, Reason.SESSION_CLOSED, kiosk_id)

    @precondition(lambda self: bool(self.history))
    @rule(index=st.integers(min_value=0))
    def redeliver(self, index: int) -> None:
        event, verdict = self.history[index % len(self.history)]
        outcome = self._apply(event)
        assert outcome.replayed
        assert outcome.verdict == verdict
        assert outcome.changed == []

    # Short pauses keep sessions alive; the rest sit on and around the idle timeout.
    @rule(seconds=st.sampled_from([1, 5, 20, 59, 60, 61, 90]))
    def wait(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @invariant()
    def the_database_agrees_with_the_model(self) -> None:
        open_rows = self._query(
            "SELECT item_id, member_id FROM checkouts WHERE returned_at IS NULL ORDER BY item_id"
        )
        items = [item_id for item_id, _ in open_rows]
        assert len(items) == len(set(items)), "an item has two open checkouts"
        held = {item_id: member_id for item_id, member_id in self.holder.items() if member_id}
        assert dict(open_rows) == held
        holds = self._query(
            "SELECT item_id, member_id, state FROM holds WHERE state IN ('waiting', 'ready')"
            " ORDER BY item_id, id"
        )
        rows: list[tuple[str, str, str]] = [
            (i, m, "ready") for i, m in self.ready.items() if m is not None
        ]
        rows += [(i, m, "waiting") for i, queue in self.waiting.items() for m in queue]
        # A ready hold was placed before those still waiting: queue order is id order.
        expected = sorted(rows, key=lambda row: (row[0], row[2] != "ready"))
        assert [tuple(row) for row in holds] == expected
        decided = self._query("SELECT count(*) FROM scan_events")
        audited = self._query("SELECT count(*) FROM qr_audit_log WHERE action LIKE 'scan.%'")
        assert decided == audited == [(len(self.history),)]


def test_random_walk_ups_follow_the_model(backend: str, tmp_path: Path) -> None:
    # Synchronous on purpose: the machine's rules drive their own event loop.
    loop = asyncio.new_event_loop()
    databases = contextlib.AsyncExitStack()
    try:
        dsn = None
        if backend == "postgres":
            dsn = loop.run_until_complete(databases.enter_async_context(fresh_database()))

        class ThisRun(WalkUps):
            bench = Bench(loop, tmp_path, dsn)

        run_state_machine_as_test(
            ThisRun,
            settings=settings(
                max_examples=EXAMPLES[backend], stateful_step_count=STEPS, deadline=None
            ),
        )
    finally:
        try:
            loop.run_until_complete(databases.aclose())
        finally:
            loop.close()
