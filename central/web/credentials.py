"""Sign-in rows shared by the members' app and the staff console: tickets, passkeys, sessions.

One copy of the SQL, pointed at each surface's own tables (:class:`Tables`): a member's and a
staff member's credentials never share a table, so no query can mistake one for the other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from central.storage.base import Tx


class SqlHooks(Protocol):
    """The statement hooks :class:`SqliteStore` and :class:`PostgresStore` both have."""

    def _rollout_tx(self) -> AbstractAsyncContextManager[Tx]: ...

    async def _tx_one(self, tx: Tx, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None: ...

    async def _tx_exec(self, tx: Tx, sql: str, args: tuple[Any, ...]) -> int: ...

    async def _read_one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None: ...

    async def _read_all(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]: ...

    def _moment(self, value: Any) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class Passkey:
    """A registered WebAuthn credential and whose it is (``member_id``: a member or staff id)."""

    member_id: str
    public_key: bytes
    sign_count: int


@dataclass(frozen=True, slots=True)
class WebSession:
    """A signed-in browser (``member_id``: the member, or the staff member, it belongs to)."""

    member_id: str
    csrf: str


@dataclass(frozen=True, slots=True)
class Tables:
    """Where one surface keeps its credentials (constant names, never from a request).

    ``live`` is a condition on ``owner`` a credential must meet to be used (staff: not
    disabled), so switching an account off ends its sessions and passkeys at once.
    """

    tickets: str
    passkeys: str
    sessions: str
    owner: str
    live: str = "1 = 1"


class Credentials(ABC):
    """Sign-in links, WebAuthn challenges, passkeys and browser sessions of one surface."""

    def __init__(self, store: SqlHooks, tables: Tables) -> None:
        self._s = store
        self._t = tables

    @abstractmethod
    async def member_by_email(self, email: str) -> str | None:
        """The account signing in with ``email`` (None if unknown or switched off)."""

    @abstractmethod
    async def member_name(self, member_id: str) -> str | None:
        """The account's name, to greet and to name a passkey."""

    async def add_ticket(
        self, ticket_hash: str, purpose: str, owner: str | None, expires_at: datetime
    ) -> None:
        """Store a sign-in link or WebAuthn challenge (by hash) until it is used or expires."""
        t = self._t
        async with self._s._rollout_tx() as tx:
            await self._s._tx_exec(
                tx,
                f"INSERT INTO {t.tickets} (ticket_hash, purpose, {t.owner}, expires_at)"  # noqa: S608 - constant names
                " VALUES (?, ?, ?, ?)",
                (ticket_hash, purpose, owner, expires_at),
            )

    async def use_ticket(self, ticket_hash: str, purpose: str, now: datetime) -> tuple[bool, str]:
        """Spend a ticket once: (True, its owner's id or "") or (False, "") if spent/unknown."""
        t = self._t
        async with self._s._rollout_tx() as tx:
            used = await self._s._tx_exec(
                tx,
                f"UPDATE {t.tickets} SET used_at = ? WHERE ticket_hash = ? AND purpose = ?"  # noqa: S608 - constant names
                " AND used_at IS NULL AND expires_at > ?",
                (now, ticket_hash, purpose, now),
            )
            if used != 1:
                return False, ""
            row = await self._s._tx_one(
                tx,
                f"SELECT {t.owner} FROM {t.tickets} WHERE ticket_hash = ?",  # noqa: S608 - constant names
                (ticket_hash,),
            )
        return True, "" if row is None or row[0] is None else str(row[0])

    async def add_passkey(
        self, credential_id: str, owner: str, public_key: bytes, sign_count: int, now: datetime
    ) -> None:
        """Register a passkey."""
        t = self._t
        async with self._s._rollout_tx() as tx:
            await self._s._tx_exec(
                tx,
                f"INSERT INTO {t.passkeys} (credential_id, {t.owner}, public_key, sign_count,"  # noqa: S608 - constant names
                " created_at) VALUES (?, ?, ?, ?, ?)",
                (credential_id, owner, public_key, sign_count, now),
            )

    async def passkey(self, credential_id: str) -> Passkey | None:
        """A usable registered passkey by its credential id (base64url)."""
        t = self._t
        row = await self._s._read_one(
            f"SELECT {t.owner}, public_key, sign_count FROM {t.passkeys}"  # noqa: S608 - constant names
            f" WHERE credential_id = ? AND {t.live}",
            (credential_id,),
        )
        return None if row is None else Passkey(str(row[0]), bytes(row[1]), int(row[2]))

    async def passkeys_of(self, owner: str) -> list[str]:
        """The credential ids ``owner`` has registered."""
        t = self._t
        rows = await self._s._read_all(
            f"SELECT credential_id FROM {t.passkeys} WHERE {t.owner} = ? ORDER BY created_at",  # noqa: S608 - constant names
            (owner,),
        )
        return [str(r[0]) for r in rows]

    async def bump_sign_count(self, credential_id: str, old: int, new: int) -> bool:
        """Move a passkey's counter forward; False if another sign-in moved it first."""
        async with self._s._rollout_tx() as tx:
            changed = await self._s._tx_exec(
                tx,
                f"UPDATE {self._t.passkeys} SET sign_count = ?"  # noqa: S608 - constant names
                " WHERE credential_id = ? AND sign_count = ?",
                (new, credential_id, old),
            )
        return changed == 1

    async def new_session(
        self, session_hash: str, owner: str, csrf: str, now: datetime, expires_at: datetime
    ) -> None:
        """Remember a signed-in browser by the hash of its cookie."""
        t = self._t
        async with self._s._rollout_tx() as tx:
            await self._s._tx_exec(
                tx,
                f"INSERT INTO {t.sessions} (session_hash, {t.owner}, csrf, created_at,"  # noqa: S608 - constant names
                " expires_at) VALUES (?, ?, ?, ?, ?)",
                (session_hash, owner, csrf, now, expires_at),
            )

    async def session(self, session_hash: str, now: datetime) -> WebSession | None:
        """The signed-in browser with this cookie hash, if it has not expired."""
        t = self._t
        row = await self._s._read_one(
            f"SELECT {t.owner}, csrf FROM {t.sessions}"  # noqa: S608 - constant names
            f" WHERE session_hash = ? AND expires_at > ? AND {t.live}",
            (session_hash, now),
        )
        return None if row is None else WebSession(str(row[0]), str(row[1]))

    async def end_session(self, session_hash: str) -> None:
        """Sign a browser out."""
        async with self._s._rollout_tx() as tx:
            await self._s._tx_exec(
                tx,
                f"DELETE FROM {self._t.sessions} WHERE session_hash = ?",  # noqa: S608 - constant names
                (session_hash,),
            )
