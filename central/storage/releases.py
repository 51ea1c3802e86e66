"""Kiosk releases, their rollouts and each kiosk's part in one: SQL written once, both backends."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from central.errors import StorageError
from central.storage.base import AuditEntry, Tx
from central.storage.hooks import BackendHooks
from central.storage.rows import KioskUpdateRow, ReleaseRow, RolloutRow, RolloutState

ACTIVE = (RolloutState.RUNNING, RolloutState.PAUSED)
HALT_ACTOR = "system:rollout"


class ReleaseRefusedError(StorageError):
    """A release or rollout change the current state does not allow (the API says 409)."""


_RELEASE = "SELECT version, sha256, size, signature, notes, created_by, created_at FROM releases"
_ROLLOUT = (
    "SELECT rollout_id, version, state, percent, kiosks, abort_percent, abort_min, reason,"
    " created_by, created_at, changed_at, halt_reason FROM release_rollouts"
)


class ReleaseWrites(BackendHooks):
    """Mixin for a store: releases and rollouts, every change audited.

    It writes through the hooks central/storage/rollout.py defines, which both backends
    implement (``?`` placeholders; PostgreSQL numbers them).
    """

    @contextlib.asynccontextmanager
    async def _refusing_conflicts(self, message: str) -> AsyncIterator[Tx]:
        """A write transaction whose constraint conflicts become a refusal with ``message``."""
        try:
            async with self._rollout_tx() as tx:
                yield tx
        except StorageError:
            raise
        except Exception as exc:
            if self.is_conflict(exc):
                raise ReleaseRefusedError(message) from exc
            raise

    # -- releases ----------------------------------------------------------------------------

    async def add_release(
        self, release: ReleaseRow, artifact: bytes, actor: str, now: datetime
    ) -> ReleaseRow:
        """Store a release and its artifact; a version or artifact already there is refused."""
        # A conflict: another instance published it meanwhile.
        async with self._refusing_conflicts(f"release {release.version} already exists") as tx:
            taken = await self._tx_one(
                tx,
                "SELECT version FROM releases WHERE version = ? OR sha256 = ?",
                (release.version, release.sha256),
            )
            if taken is not None:
                raise ReleaseRefusedError(f"release {taken[0]} has that version or file")
            await self._tx_exec(
                tx,
                "INSERT INTO releases (version, sha256, size, signature, artifact, notes,"
                " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    release.version,
                    release.sha256,
                    release.size,
                    release.signature,
                    artifact,
                    release.notes,
                    actor,
                    now,
                ),
            )
            await tx.audit(
                AuditEntry(
                    now,
                    actor,
                    "release.publish",
                    detail={
                        "version": release.version,
                        "sha256": release.sha256,
                        "size": release.size,
                    },
                )
            )
        found = await self.get_release(release.version)
        assert found is not None
        return found

    async def get_release(self, version: str) -> ReleaseRow | None:
        """One release, without its artifact."""
        row = await self._read_one(f"{_RELEASE} WHERE version = ?", (version,))
        return None if row is None else self._release(row)

    async def list_releases(self) -> Sequence[ReleaseRow]:
        """Every release, newest first."""
        rows = await self._admin_read(f"{_RELEASE} ORDER BY created_at DESC, version", ())
        return [self._release(r) for r in rows]

    async def release_artifact(self, version: str) -> bytes | None:
        """The artifact's bytes, as published."""
        row = await self._read_one("SELECT artifact FROM releases WHERE version = ?", (version,))
        return None if row is None else bytes(row[0])

    # -- rollouts ----------------------------------------------------------------------------

    async def start_rollout(
        self,
        version: str,
        *,
        percent: int,
        kiosks: Sequence[str],
        abort_percent: int,
        abort_min: int,
        reason: str,
        actor: str,
        now: datetime,
    ) -> RolloutRow:
        """Begin rolling ``version`` out; refused while another rollout is running or paused."""
        # A conflict: another instance started one meanwhile (the one-active index).
        async with self._refusing_conflicts("another rollout started meanwhile") as tx:
            known = "SELECT 1 FROM releases WHERE version = ?"
            if await self._tx_one(tx, known, (version,)) is None:
                raise ReleaseRefusedError(f"no release {version}")
            active = await self._tx_one(
                tx,
                "SELECT rollout_id FROM release_rollouts WHERE state IN (?, ?)",
                tuple(s.value for s in ACTIVE),
            )
            if active is not None:
                raise ReleaseRefusedError(
                    f"rollout {active[0]} is still in progress: abort it or let it finish"
                )
            row = await self._tx_one(
                tx,
                "INSERT INTO release_rollouts (version, state, percent, kiosks, abort_percent,"
                " abort_min, reason, created_by, created_at, changed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING rollout_id",
                (
                    version,
                    RolloutState.RUNNING.value,
                    percent,
                    json.dumps(sorted(kiosks)),
                    abort_percent,
                    abort_min,
                    reason,
                    actor,
                    now,
                    now,
                ),
            )
            assert row is not None
            rollout_id = int(row[0])
            await tx.audit(
                AuditEntry(
                    now,
                    actor,
                    "release.rollout_start",
                    reason=reason,
                    detail={
                        "rollout_id": rollout_id,
                        "version": version,
                        "percent": percent,
                        "kiosks": sorted(kiosks),
                        "abort_percent": abort_percent,
                        "abort_min": abort_min,
                    },
                )
            )
        found = await self.get_rollout(rollout_id)
        assert found is not None
        return found

    async def change_rollout(
        self,
        rollout_id: int,
        to: RolloutState,
        *,
        reason: str,
        actor: str,
        now: datetime,
        detail: dict[str, Any] | None = None,
    ) -> RolloutRow:
        """Pause, resume, abort, halt or finish a rollout, from the states that allow it."""
        allowed = {
            RolloutState.PAUSED: (RolloutState.RUNNING,),
            RolloutState.RUNNING: (RolloutState.PAUSED,),
            RolloutState.ABORTED: ACTIVE,
            RolloutState.HALTED: (RolloutState.RUNNING,),
            RolloutState.DONE: (RolloutState.RUNNING,),
        }[to]
        marks = ", ".join("?" for _ in allowed)
        async with self._rollout_tx() as tx:
            # Conditional, so of two instances halting at once only the first writes.
            changed = await self._tx_exec(
                tx,
                "UPDATE release_rollouts SET state = ?, changed_at = ?,"  # noqa: S608 - ? marks only
                " halt_reason = CASE WHEN ? THEN ? ELSE halt_reason END"
                f" WHERE rollout_id = ? AND state IN ({marks})",
                (
                    to.value,
                    now,
                    to is RolloutState.HALTED,
                    reason,
                    rollout_id,
                    *(s.value for s in allowed),
                ),
            )
            if not changed:
                row = await self._tx_one(tx, f"{_ROLLOUT} WHERE rollout_id = ?", (rollout_id,))
                if row is None:
                    raise ReleaseRefusedError(f"no rollout {rollout_id}")
                raise ReleaseRefusedError(f"rollout {rollout_id} is {row[2]}: cannot {to.value}")
            await tx.audit(
                AuditEntry(
                    now,
                    actor,
                    f"release.rollout_{to.value}",
                    reason=reason,
                    detail={"rollout_id": rollout_id, **(detail or {})},
                )
            )
        found = await self.get_rollout(rollout_id)
        assert found is not None
        return found

    async def get_rollout(self, rollout_id: int) -> RolloutRow | None:
        """One rollout."""
        row = await self._read_one(f"{_ROLLOUT} WHERE rollout_id = ?", (rollout_id,))
        return None if row is None else self._rollout(row)

    async def list_rollouts(self, *, states: Sequence[RolloutState] = ()) -> Sequence[RolloutRow]:
        """Rollouts (in ``states``, if given), newest first."""
        where = f" WHERE state IN ({', '.join('?' for _ in states)})" if states else ""
        rows = await self._admin_read(
            f"{_ROLLOUT}{where} ORDER BY rollout_id DESC", tuple(s.value for s in states)
        )
        return [self._rollout(r) for r in rows]

    async def rollout_kiosks(self, rollout_id: int) -> Sequence[KioskUpdateRow]:
        """Every kiosk central has offered this rollout to, and where each stands."""
        rows = await self._admin_read(
            "SELECT kiosk_id, state, reason, offers, offered_at, changed_at FROM kiosk_updates"
            " WHERE rollout_id = ? ORDER BY kiosk_id",
            (rollout_id,),
        )
        return [
            KioskUpdateRow(
                r[0], r[1], r[2], int(r[3]), self._moment(r[4]), self._moment(r[5]) or datetime.min
            )
            for r in rows
        ]

    async def record_update(
        self,
        rollout_id: int,
        kiosk_id: str,
        state: str,
        reason: str | None,
        now: datetime,
        *,
        offered: bool = False,
    ) -> None:
        """Note where a kiosk stands (``offered``: central just sent it the offer again)."""
        async with self._rollout_tx() as tx:
            await self._tx_exec(
                tx,
                "INSERT INTO kiosk_updates (rollout_id, kiosk_id, state, reason, offers,"
                " offered_at, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (rollout_id, kiosk_id) DO UPDATE SET state = excluded.state,"
                " reason = excluded.reason,"
                " offers = kiosk_updates.offers + excluded.offers,"
                " offered_at = coalesce(excluded.offered_at, kiosk_updates.offered_at),"
                " changed_at = excluded.changed_at",
                (
                    rollout_id,
                    kiosk_id,
                    state,
                    reason,
                    1 if offered else 0,
                    now if offered else None,
                    now,
                ),
            )

    def _release(self, row: Sequence[Any]) -> ReleaseRow:
        version, sha256, size, signature, notes, by, at = row
        return ReleaseRow(
            version, sha256, int(size), signature, notes, by, self._moment(at) or datetime.min
        )

    def _rollout(self, row: Sequence[Any]) -> RolloutRow:
        (rid, version, state, percent, kiosks, abort_percent, abort_min, reason, by, at,
         changed, halt) = row  # fmt: skip
        return RolloutRow(
            int(rid),
            version,
            RolloutState(state),
            int(percent),
            tuple(json.loads(kiosks)),
            int(abort_percent),
            int(abort_min),
            reason,
            by,
            self._moment(at) or datetime.min,
            self._moment(changed) or datetime.min,
            halt,
        )


# Defined in central/storage/rows.py; they are still importable from here.
__all__ = ["KioskUpdateRow", "ReleaseRow", "RolloutRow", "RolloutState"]
