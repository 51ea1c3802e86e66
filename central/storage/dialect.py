"""What differs between SQLite and PostgreSQL for one query: placeholders, times, locks."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@functools.lru_cache(maxsize=64)
def to_db(moment: datetime) -> str:
    """A fixed-width UTC text timestamp (SQLite), so text order is time order in SQL."""
    # isoformat with fixed microseconds is the same text as strftime, several times
    # faster; this runs a dozen times per scan, nearly always on the batch's one "now",
    # hence the cache (equal datetimes are one instant, so one text).
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_db(text: str) -> datetime:
    """The inverse of :func:`to_db`."""
    return datetime.fromisoformat(text)


def _same(value: Any) -> Any:
    return value


@functools.lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, …`` (cached: the scan path's SQL is
    a few dozen fixed strings)."""
    counter = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _m: f"${next(counter)}", sql)


@dataclass(frozen=True, slots=True)
class Dialect:
    """One database's spelling of the things a query written once must not hard-code.

    Queries are written with ``?`` placeholders; a backend's connection adapter respells
    them (``sql``). Times are bound through ``param`` and read back through ``moment``.
    """

    name: str
    sql: Callable[[str], str]
    # Appended to a SELECT whose rows the transaction must hold: PostgreSQL locks the
    # rows; SQLite's BEGIN IMMEDIATE already holds the whole database.
    lock: str
    param: Callable[[datetime], Any]
    moment: Callable[[Any], datetime]
    # Serialises one kiosk event across central instances before its verdict is looked
    # up (PostgreSQL's advisory lock); None where one writer decides everything.
    claim_event: str | None

    def locking(self, select: str) -> str:
        """``select`` holding the rows it reads until the transaction ends."""
        return select + self.lock

    def opt_param(self, moment: datetime | None) -> Any:
        """A time that may be missing, as bound."""
        return None if moment is None else self.param(moment)

    def opt_moment(self, value: Any) -> datetime | None:
        """A stored time that may be NULL, read back."""
        return None if value is None else self.moment(value)


SQLITE = Dialect(
    name="sqlite",
    sql=_same,
    lock="",
    param=to_db,
    moment=from_db,
    claim_event=None,
)
POSTGRES = Dialect(
    name="postgresql",
    sql=numbered,
    lock=" FOR UPDATE",
    param=_same,
    moment=_same,
    # Event ids are the kiosk's own, so the lock key is the pair ('/' is in neither id).
    claim_event="SELECT pg_advisory_xact_lock(hashtextextended(? || '/' || ?, 0))",
)
