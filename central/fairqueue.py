"""Per-source queues drained in turn, so one busy source cannot starve the others."""

from __future__ import annotations

from collections import Counter, deque
from typing import Generic, TypeVar

_T = TypeVar("_T")


class FairQueue(Generic[_T]):
    """One bounded FIFO per source (a kiosk); batches take from the sources in turn."""

    def __init__(self, backlog: int, share: int) -> None:
        self._backlog = backlog  # most items one source may have waiting
        self._share = share  # most places one source may fill in one batch
        self._queues: dict[str, deque[_T]] = {}
        self._turns: deque[str] = deque()  # sources with something waiting, in turn order
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def put(self, source: str, item: _T) -> bool:
        """Queue ``item`` behind ``source``'s others; False if its backlog is full."""
        queue = self._queues.get(source)
        if queue is None:
            queue = self._queues[source] = deque()
            self._turns.append(source)
        elif len(queue) >= self._backlog:
            return False
        queue.append(item)
        self._size += 1
        return True

    def take(self, most: int) -> list[_T]:
        """Up to ``most`` items, one source at a time in turn, each to its share.

        A source that used its share goes to the back of the line for the next batch;
        within a source, items keep their order.
        """
        batch: list[_T] = []
        taken: Counter[str] = Counter()
        spent: list[str] = []
        while self._turns and len(batch) < most:
            source = self._turns.popleft()
            queue = self._queues[source]
            batch.append(queue.popleft())
            taken[source] += 1
            if not queue:
                del self._queues[source]
            elif taken[source] >= self._share:
                spent.append(source)
            else:
                self._turns.append(source)
        self._turns.extend(spent)
        self._size -= len(batch)
        return batch

    def drop(self, source: str) -> list[_T]:
        """Remove and return everything ``source`` has waiting (it was just blocked)."""
        queue = self._queues.pop(source, None)
        if queue is None:
            return []
        self._turns.remove(source)  # once per block, over the sources that wait: cheap
        self._size -= len(queue)
        return list(queue)
