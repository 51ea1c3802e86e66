"""The admin writes both backends share: one audited INSERT each, refused politely."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from broker.ids import is_id
from broker.messages import Availability, KioskConfig
from central.errors import NotFoundError, StorageError
from central.storage.base import (
    AuditEntry,
    Edited,
    ImportRefusedError,
    ItemRow,
    MemberRow,
    Problem,
    ShelfRow,
    Tx,
)
from central.storage.hooks import AdminTx, BackendHooks
from central.storage.kiosk_config import Change, config_from_row, configured, device_config

# Rows per import transaction: on SQLite a few milliseconds of write lock each (see
# docs/benchmarks.md), so a scan waits at most that long behind an import.
IMPORT_CHUNK = 25
_R = TypeVar("_R")


class AdminWrites(BackendHooks):
    """Mixin for a store: library data and passes, each write audited in its transaction.

    SQL is written once with ``?`` placeholders and datetimes as values; each backend's
    ``_admin_write`` adapts both and turns constraint refusals into admin-readable errors.
    """

    async def add_shelf(self, shelf_id: str, name: str, now: datetime, actor: str) -> None:
        await self._admin_write(
            "INSERT INTO shelves (shelf_id, name, created_at) VALUES (?, ?, ?)",
            (shelf_id, name, now),
            AuditEntry(now, actor, "shelf.add", detail={"shelf_id": shelf_id, "name": name}),
        )

    async def add_item(
        self, item_id: str, shelf_id: str, name: str, now: datetime, actor: str, loan_days: int = 14
    ) -> Availability:
        announced: list[Availability] = []

        async def announce(tx: Tx) -> None:
            # In the insert's transaction: the item never exists without its availability.
            announced.append(await tx.availability(item_id, now, bump=True))

        await self._admin_write(
            "INSERT INTO items (item_id, shelf_id, name, loan_days, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (item_id, shelf_id, name, loan_days, now),
            AuditEntry(
                now, actor, "item.add", item_id=item_id, detail={"shelf_id": shelf_id, "name": name}
            ),
            then=announce,
        )
        return announced[0]

    async def add_member(
        self, member_id: str, name: str, now: datetime, actor: str, checkout_limit: int = 5
    ) -> None:
        await self._admin_write(
            "INSERT INTO members (member_id, name, checkout_limit, created_at) VALUES (?, ?, ?, ?)",
            (member_id, name, checkout_limit, now),
            AuditEntry(
                now,
                actor,
                "member.add",
                member_id=member_id,
                detail={"checkout_limit": checkout_limit},
            ),
        )

    async def add_kiosk(
        self,
        kiosk_id: str,
        shelf_id: str,
        now: datetime,
        actor: str,
        session_timeout_s: float = 60.0,
    ) -> None:
        await self._admin_write(
            "INSERT INTO kiosks (kiosk_id, shelf_id, session_timeout_s, created_at)"
            " VALUES (?, ?, ?, ?)",
            (kiosk_id, shelf_id, session_timeout_s, now),
            AuditEntry(now, actor, "kiosk.enrol", kiosk_id=kiosk_id, detail={"shelf_id": shelf_id}),
        )

    async def issue_pass(
        self, pass_id: str, member_id: str, now: datetime, expires_at: datetime, actor: str
    ) -> None:
        await self._admin_write(
            "INSERT INTO qr_codes (pass_id, member_id, issued_at, expires_at) VALUES (?, ?, ?, ?)",
            (pass_id, member_id, now, expires_at),
            AuditEntry(
                now,
                actor,
                "pass.issue",
                member_id=member_id,
                detail={"pass_id": pass_id, "expires_at": expires_at.isoformat()},
            ),
        )

    # --- edits, reprints and bulk imports: each one transaction, each change audited ---

    async def list_shelves(self) -> Sequence[ShelfRow]:
        rows = await self._admin_read(
            "SELECT s.shelf_id, s.name, count(i.item_id) FROM shelves s"
            " LEFT JOIN items i ON i.shelf_id = s.shelf_id"
            " GROUP BY s.shelf_id, s.name ORDER BY s.shelf_id",
            (),
        )
        return [ShelfRow(r[0], r[1], int(r[2])) for r in rows]

    async def list_members(self) -> Sequence[MemberRow]:
        rows = await self._admin_read(
            "SELECT member_id, name, suspended, checkout_limit FROM members ORDER BY member_id", ()
        )
        return [MemberRow(r[0], r[1], bool(r[2]), int(r[3])) for r in rows]

    async def edit_item(
        self, item_id: str, changes: dict[str, Any], now: datetime, actor: str
    ) -> Edited[ItemRow]:
        async with self._admin_tx() as atx:
            found = await atx.fetch(_ITEM_SQL, (item_id,), lock=True)
            if not found:
                raise NotFoundError(f"no item {item_id}")
            before = ItemRow(*found[0])
            shelf = changes.get("shelf_id")
            if shelf is not None and not await atx.fetch(
                "SELECT 1 FROM shelves WHERE shelf_id = ?", (shelf,)
            ):
                raise StorageError(f"shelf {shelf} does not exist")
            changed = await _apply(atx, "items", "item_id", before, changes, _ITEM_EDITABLE)
            after = replace(before, **changed)
            availability = None
            if changed:
                await _audit_edit(atx, now, actor, "item.edit", before, changed, item_id=item_id)
                # Kiosks show name, shelf and state; a loan period change is not news to them.
                if changed.keys() & {"name", "shelf_id", "state"}:
                    availability = await atx.tx.availability(item_id, now, bump=True)
        moved = before.shelf_id if after.shelf_id != before.shelf_id else None
        return Edited(before, after, availability, moved)

    async def edit_shelf(
        self, shelf_id: str, changes: dict[str, Any], now: datetime, actor: str
    ) -> Edited[ShelfRow]:
        async with self._admin_tx() as atx:
            found = await atx.fetch(
                "SELECT shelf_id, name FROM shelves WHERE shelf_id = ?", (shelf_id,), lock=True
            )
            if not found:
                raise NotFoundError(f"no shelf {shelf_id}")
            before = ShelfRow(found[0][0], found[0][1])
            changed = await _apply(atx, "shelves", "shelf_id", before, changes, {"name"})
            if changed:
                await _audit_edit(
                    atx, now, actor, "shelf.edit", before, changed, subject={"shelf_id": shelf_id}
                )
        return Edited(before, replace(before, **changed))

    async def edit_member(
        self, member_id: str, changes: dict[str, Any], now: datetime, actor: str
    ) -> Edited[MemberRow]:
        async with self._admin_tx() as atx:
            found = await atx.fetch(
                "SELECT member_id, name, suspended, checkout_limit FROM members"
                " WHERE member_id = ?",
                (member_id,),
                lock=True,
            )
            if not found:
                raise NotFoundError(f"no member {member_id}")
            row = found[0]
            before = MemberRow(row[0], row[1], bool(row[2]), int(row[3]))
            changed = await _apply(atx, "members", "member_id", before, changes, _MEMBER_EDITABLE)
            if changed:
                await _audit_edit(
                    atx, now, actor, "member.edit", before, changed, member_id=member_id
                )
        return Edited(before, replace(before, **changed))

    async def reprint_label(self, item_id: str, now: datetime, actor: str) -> ItemRow:
        async with self._admin_tx() as atx:
            found = await atx.fetch(_ITEM_SQL, (item_id,), lock=True)
            if not found:
                raise NotFoundError(f"no item {item_id}")
            before = ItemRow(*found[0])
            after = replace(before, label_version=before.label_version + 1)
            await atx.run(
                "UPDATE items SET label_version = ? WHERE item_id = ?",
                (after.label_version, item_id),
            )
            await atx.tx.audit(
                AuditEntry(
                    now,
                    actor,
                    "label.reprint",
                    item_id=item_id,
                    detail={
                        "before": {"label_version": before.label_version},
                        "after": {"label_version": after.label_version},
                    },
                )
            )
        return after

    async def import_rows(
        self, kind: str, rows: Sequence[dict[str, Any]], now: datetime, actor: str
    ) -> Sequence[Availability]:
        spec = _IMPORTS.get(kind)
        if spec is None:
            raise ValueError(f"cannot import {kind!r}")
        table, key, columns = spec
        # The whole file is checked before anything is written, from a read that holds no
        # write lock; a row added by another admin since is caught by the database's own
        # constraint in its chunk, and the chunks already written are taken back.
        existing = {r[0] for r in await self._admin_read(f"SELECT {key} FROM {table}", ())}  # noqa: S608 -- table and key come from _IMPORTS, not from the request
        shelves = {r[0] for r in await self._admin_read("SELECT shelf_id FROM shelves", ())}
        problems = _check_rows(rows, key, existing, shelves if kind == "items" else None)
        if problems:
            raise ImportRefusedError(problems)
        marks = ", ".join("?" for _ in range(len(columns) + 1))
        insert = f"INSERT INTO {table} ({', '.join(columns)}, created_at) VALUES ({marks})"  # noqa: S608 -- names from _IMPORTS
        action = f"{_SINGULAR[kind]}.import"

        async def chunk_of(part: Sequence[dict[str, Any]], atx: AdminTx) -> list[Availability]:
            for row in part:
                await atx.run(insert, (*(row[c] for c in columns), now))
                await atx.tx.audit(
                    AuditEntry(
                        now,
                        actor,
                        action,
                        item_id=row[key] if kind == "items" else None,
                        member_id=row[key] if kind == "members" else None,
                        detail={c: row[c] for c in columns},
                    )
                )
            if kind != "items":
                return []
            return [await atx.tx.availability(row[key], now, bump=True) for row in part]

        # Short transactions, so scans (which need the same SQLite write lock) wait one
        # chunk at most, never the whole file.
        added: list[Availability] = []
        written: list[str] = []
        try:
            for start in range(0, len(rows), IMPORT_CHUNK):
                part = rows[start : start + IMPORT_CHUNK]
                added += await self._admin_chunk(functools.partial(chunk_of, part))
                written += [row[key] for row in part]
        except StorageError:
            if written:
                await self._undo_import(table, key, written, now, actor, action)
            raise
        return added

    async def _undo_import(
        self, table: str, key: str, ids: Sequence[str], now: datetime, actor: str, action: str
    ) -> None:
        """Take back the chunks of an import that failed part-way (in one transaction)."""
        async with self._admin_tx() as atx:
            for start in range(0, len(ids), IMPORT_CHUNK):
                part = list(ids[start : start + IMPORT_CHUNK])
                marks = ", ".join("?" for _ in part)
                await atx.run(f"DELETE FROM {table} WHERE {key} IN ({marks})", tuple(part))  # noqa: S608 -- names from _IMPORTS
            await atx.tx.audit(
                AuditEntry(
                    now,
                    actor,
                    f"{action}_undone",
                    reason="a later chunk was refused; nothing of this import is kept",
                    detail={"rows": len(ids)},
                )
            )

    async def set_item_state(self, item_id: str, state: str, now: datetime, actor: str) -> None:
        await self._admin_write(
            "UPDATE items SET state = ?, availability_seq = availability_seq + 1 WHERE item_id = ?",
            (state, item_id),
            AuditEntry(now, actor, "item.state", item_id=item_id, detail={"state": state}),
        )

    async def configure_kiosk(
        self,
        kiosk_id: str,
        change: Change,
        now: datetime,
        actor: str,
        *,
        return_point: bool | None = None,
    ) -> KioskConfig | None:
        """Apply ``change`` (and ``return_point``, central's own setting) under the kiosk's
        row lock, bump its version, audit before/after."""
        async with self._admin_tx() as atx:
            rows = await atx.fetch(
                "SELECT kiosk_id, shelf_id, config_version, session_timeout_s, device_config,"
                " retired, return_point FROM kiosks WHERE kiosk_id = ?",
                (kiosk_id,),
                lock=True,
            )
            if not rows:
                return None
            if rows[0][5]:
                raise StorageError(f"kiosk {kiosk_id} is retired")
            old = config_from_row(rows[0])
            new = change(old).model_copy(update={"config_version": old.config_version + 1})
            if not await atx.fetch("SELECT 1 FROM shelves WHERE shelf_id = ?", (new.shelf_id,)):
                raise StorageError(f"shelf {new.shelf_id} does not exist")
            await atx.run(
                "UPDATE kiosks SET shelf_id = ?, session_timeout_s = ?, device_config = ?,"
                " config_version = ? WHERE kiosk_id = ?",
                (
                    new.shelf_id,
                    new.session_timeout_s,
                    device_config(new),
                    new.config_version,
                    kiosk_id,
                ),
            )
            audited = configured(old, new, now, actor)
            if return_point is not None and bool(rows[0][6]) != return_point:
                await atx.run(
                    "UPDATE kiosks SET return_point = ? WHERE kiosk_id = ?",
                    (return_point, kiosk_id),
                )
                audited.detail["changes"]["return_point"] = [bool(rows[0][6]), return_point]
            await atx.tx.audit(audited)
        return new


_ITEM_SQL = (
    "SELECT item_id, shelf_id, name, label_version, state, loan_days FROM items WHERE item_id = ?"
)
_SINGULAR = {"shelves": "shelf", "items": "item", "members": "member"}
_ITEM_EDITABLE = frozenset({"name", "shelf_id", "loan_days", "state"})
_MEMBER_EDITABLE = frozenset({"name", "suspended", "checkout_limit"})
# kind → (table, key column, columns an import row fills)
_IMPORTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "shelves": ("shelves", "shelf_id", ("shelf_id", "name")),
    "items": ("items", "item_id", ("item_id", "shelf_id", "name", "loan_days")),
    "members": ("members", "member_id", ("member_id", "name", "checkout_limit")),
}


async def _apply(
    atx: AdminTx,
    table: str,
    key: str,
    before: Any,
    changes: dict[str, Any],
    editable: frozenset[str] | set[str],
) -> dict[str, Any]:
    """UPDATE the columns whose value really changes; which ones they were."""
    unknown = set(changes) - set(editable)
    if unknown:
        raise ValueError(f"cannot edit {sorted(unknown)} of {table}")
    changed = {k: v for k, v in changes.items() if v is not None and getattr(before, k) != v}
    if changed:
        sets = ", ".join(f"{column} = ?" for column in changed)
        # Column names were checked against ``editable`` above; values are bound.
        await atx.run(
            f"UPDATE {table} SET {sets} WHERE {key} = ?",  # noqa: S608 -- see above
            (*changed.values(), getattr(before, key)),
        )
    return changed


async def _audit_edit(
    atx: AdminTx,
    now: datetime,
    actor: str,
    action: str,
    before: Any,
    changed: dict[str, Any],
    *,
    item_id: str | None = None,
    member_id: str | None = None,
    subject: dict[str, Any] | None = None,
) -> None:
    await atx.tx.audit(
        AuditEntry(
            now,
            actor,
            action,
            item_id=item_id,
            member_id=member_id,
            detail={
                **(subject or {}),
                "before": {k: getattr(before, k) for k in changed},
                "after": changed,
            },
        )
    )


def _check_rows(
    rows: Sequence[dict[str, Any]], key: str, existing: set[str], shelves: set[str] | None
) -> list[Problem]:
    """Every reason a row cannot be imported (values were typed by the API models)."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        ident = row[key]
        if not is_id(ident):
            problems.append(Problem(index, key, f"{ident!r} is not a valid id"))
        elif ident in existing:
            problems.append(Problem(index, key, f"{ident} already exists"))
        elif ident in seen:
            problems.append(Problem(index, key, f"{ident} appears twice in this import"))
        seen.add(ident)
        if shelves is not None and row["shelf_id"] not in shelves:
            problems.append(Problem(index, "shelf_id", f"shelf {row['shelf_id']} does not exist"))
    return problems


# Defined in central/storage/hooks.py; it is still importable from here.
__all__ = ["AdminTx"]
