"""A batch of scans decided in one PostgreSQL transaction, one statement per round.

The first statement takes every lock of the batch in the global order (claims, kiosks,
buckets, items, holds, members, passes; each class sorted) and returns the facts; the rules
(:mod:`central.rules`, through :func:`central.ledger.apply`) decide from them in Python;
the next statement applies those writes and returns the next round's facts. A round holds
at most one event per kiosk (each kiosk's order is kept) and no two events sharing an item
or a member (so no event's facts depend on another's writes in its round); an event that
would share moves to the next round. Whatever fails, the caller decides the batch again
one event per transaction, so one bad event is dead-lettered alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from broker.messages import AnyEvent, Reason
from central import ledger, security
from central.ledger import Outcome
from central.security import Limits
from central.storage.postgres import PostgresStore
from central.storage.scan_batch import Request, Shape, SnapshotTx
from central.tokens import Label, Pass, Token

Scan = tuple[AnyEvent, Token | Reason | None]


@dataclass(frozen=True, slots=True)
class Batched:
    """The outcomes in the scans' order, and what deciding them cost in round trips."""

    outcomes: list[Outcome]
    statements: int  # BEGIN and COMMIT included
    rounds: int
    order: list[int]  # the scans' indexes in the order they were decided


def _shape(limits: Limits | None, now: datetime) -> Shape:
    reasons = tuple(r.value for r in security.FAILURES)
    if limits is None:
        return Shape(None, None, reasons)
    member_full = float(limits.member_burst) if limits.member_per_min > 0 else None
    since = now - limits.block_window if limits.block_after > 0 else None
    return Shape(member_full, since, reasons)


def _request(scans: Sequence[Scan], indexes: Sequence[int], limits: Limits | None) -> Request:
    """Every key the rules may ask about for these scans (a superset)."""
    request = Request()
    for index in indexes:
        event, token = scans[index]
        kiosk_id = event.kiosk_id
        request.events.append((kiosk_id, event.event_id))
        request.kiosks.add(kiosk_id)
        if limits is not None and limits.kiosk_per_min > 0:
            request.buckets[f"kiosk:{kiosk_id}"] = float(limits.kiosk_burst)
        if isinstance(token, Label):
            request.items.add(token.item_id)
            request.pairs.add((kiosk_id, token.item_id))
        elif isinstance(token, Pass):
            request.members.add(token.member_id)
            request.passes.add(token.pass_id)
    return request


def _round(
    scans: Sequence[Scan], waiting: dict[str, deque[int]], members: dict[str, str | None]
) -> list[int]:
    """The next round: each kiosk's next scan, unless its item or member is taken already."""
    chosen: list[int] = []
    items: set[str] = set()
    people: set[str] = set()
    for queue in waiting.values():
        if not queue:
            continue
        index = queue[0]
        event, token = scans[index]
        item = token.item_id if isinstance(token, Label) else None
        if isinstance(token, Pass):
            member: str | None = token.member_id
        elif isinstance(token, Label):
            member = members.get(event.kiosk_id)
        else:
            member = None
        if (item is not None and item in items) or (member is not None and member in people):
            continue
        queue.popleft()
        chosen.append(index)
        if item is not None:
            items.add(item)
        if member is not None:
            people.add(member)
    return chosen


async def decide(
    store: PostgresStore,
    scans: Sequence[Scan],
    now: datetime,
    limits: Limits | None,
    clock: Callable[[], datetime] | None = None,
) -> Batched:
    """Decide ``scans`` (in order per kiosk) in one transaction; raises if any step fails.

    With ``clock``, the batch is stamped again once it holds its locks: ``now`` was taken
    before, and while the batch waited another central may have committed writes stamped
    later (a checkout racing a return of the same label at another kiosk). Stamped at the
    lock, a return is never dated before the checkout it closes, nor a hold readied before
    the loan that freed it.
    """
    waiting: dict[str, deque[int]] = {}
    for index, (event, _token) in enumerate(scans):
        waiting.setdefault(event.kiosk_id, deque()).append(index)
    outcomes: dict[int, Outcome] = {}
    order: list[int] = []
    rounds = 0
    async with store.pool.acquire() as conn, conn.transaction():
        tx = SnapshotTx(conn, now, _shape(limits, now))
        await tx.step(_request(scans, range(len(scans)), limits), lock=True)
        if clock is not None:
            now = tx.now = max(now, clock())
        members = {kiosk_id: tx.snapshot.session_member(kiosk_id) for kiosk_id in waiting}
        while True:
            chosen = _round(scans, waiting, members)
            if not chosen:
                break
            if rounds:
                # The previous round's writes, then this round's facts: one statement.
                await tx.step(_request(scans, chosen, limits), lock=False)
            rounds += 1
            tx.sessions_after = {}
            for index in chosen:
                changed = tx.begin_event(index)
                event, token = scans[index]
                outcome = await ledger.apply(tx, event, token, now, limits)
                outcome.changed = changed
                outcomes[index] = outcome
                order.append(index)
            members.update(tx.sessions_after)
        if tx.ops:
            await tx.step(None, lock=False)
    return Batched([outcomes[i] for i in range(len(scans))], tx.statements + 2, rounds, order)
