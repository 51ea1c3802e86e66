"""The hooks each backend gives the SQL written once (admin, fleet, flag, releases, reads)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar

from central.storage.base import AuditEntry, Tx

_R = TypeVar("_R")


class AdminTx(Protocol):
    """One admin write transaction, SQL with ``?`` placeholders and datetimes as values."""

    tx: Tx  # the ledger's transaction, for the audit row and the availability bump

    async def fetch(self, sql: str, args: tuple[Any, ...], *, lock: bool = False) -> list[Any]:
        """Rows as tuples; ``lock`` holds them (``FOR UPDATE``) where the backend can."""

    async def run(self, sql: str, args: tuple[Any, ...]) -> int:
        """Run one statement; how many rows it touched."""


class BackendHooks:
    """What a backend implements so the shared SQL can run on it.

    Statements use ``?`` placeholders and take datetimes as values; a backend respells
    both (see :mod:`central.storage.dialect`).
    """

    async def _admin_write(
        self,
        sql: str,
        args: tuple[Any, ...],
        entry: AuditEntry,
        then: Callable[[Tx], Awaitable[None]] | None = None,
    ) -> None:
        """One audited write in its own transaction, and ``then`` (if given) in the same
        transaction; constraint refusals as StorageError."""
        raise NotImplementedError

    def _admin_tx(self) -> AbstractAsyncContextManager[AdminTx]:
        """A write transaction for several admin statements."""
        raise NotImplementedError

    async def _admin_read(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        """Every row of a read outside any write transaction."""
        raise NotImplementedError

    def _admin_chunk(self, work: Callable[[AdminTx], Awaitable[_R]]) -> Awaitable[_R]:
        """Run ``work`` in one short write transaction, in as few thread hops as can be."""
        raise NotImplementedError

    def _rollout_tx(self) -> AbstractAsyncContextManager[Tx]:
        """A write transaction for the flag's and the releases' statements."""
        raise NotImplementedError

    async def _tx_one(self, tx: Tx, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The first row of ``sql`` inside ``tx``."""
        raise NotImplementedError

    async def _tx_exec(self, tx: Tx, sql: str, args: tuple[Any, ...]) -> int:
        """Run ``sql`` inside ``tx``; the rows it changed."""
        raise NotImplementedError

    async def _read_one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The first row of a read."""
        raise NotImplementedError

    async def _read_all(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Every row of a read."""
        raise NotImplementedError

    def _moment(self, value: Any) -> datetime | None:
        """A stored time (or NULL) read back."""
        raise NotImplementedError

    def is_conflict(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a refused write or a broken deadlock, worth one more try."""
        raise NotImplementedError
