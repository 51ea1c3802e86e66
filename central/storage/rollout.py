"""The rollout flag and circuit breaker rows, written once for both backends and audited."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from central.errors import StorageError
from central.storage.base import AuditEntry
from central.storage.hooks import BackendHooks
from central.storage.rows import FlagMode, FlagRow, FlagSetting, WindowCounts

FLAG = "qr-checkout-enabled"
BREAKER_ACTOR = "system:breaker"

_COLUMNS = (
    "mode, members, items, kiosks, percent, reason, changed_by, changed_at,"
    " tripped_at, trip_reason, breaker_reset_at"
)
# ``?`` placeholders; PostgreSQL's dialect numbers them (central.storage.dialect.numbered).
FLAG_SQL = f"SELECT {_COLUMNS} FROM rollout_flags WHERE name = ?"  # noqa: S608 - constants only


class FlagRefusedError(StorageError):
    """A flag or breaker change that the current state does not allow (the API says 409)."""


def flag_from_row(row: Sequence[Any] | None, moment: Callable[[Any], datetime | None]) -> FlagRow:
    """A :class:`FlagRow` from a ``FLAG_SQL`` row; ``moment`` reads a stored time."""
    if row is None:
        raise StorageError(f"flag {FLAG} is missing: is the schema migrated?")
    mode, members, items, kiosks, percent, reason, by, at, tripped, why, reset = row
    return FlagRow(
        FlagSetting(
            FlagMode(mode),
            tuple(json.loads(members)),
            tuple(json.loads(items)),
            tuple(json.loads(kiosks)),
            int(percent),
        ),
        reason,
        by,
        moment(at) or datetime.min,
        moment(tripped),
        why,
        moment(reset),
    )


class RolloutWrites(BackendHooks):
    """Mixin for a store: read and change the flag and the breaker, each change audited.

    Each backend supplies the four hooks below; the SQL is written once.
    """

    async def get_flag(self) -> FlagRow:
        """The flag as every instance sees it now."""
        return flag_from_row(await self._read_one(FLAG_SQL, (FLAG,)), self._moment)

    async def set_flag(
        self,
        setting: FlagSetting,
        reason: str,
        actor: str,
        now: datetime,
        *,
        action: str = "rollout.flag_set",
        while_tripped: bool = False,
    ) -> FlagRow:
        """Change the flag; refused while the breaker is tripped unless ``while_tripped``."""
        async with self._rollout_tx() as tx:
            before = flag_from_row(await self._tx_one(tx, FLAG_SQL, (FLAG,)), self._moment)
            # Conditional, so a trip committed by another instance meanwhile still wins.
            changed = await self._tx_exec(
                tx,
                "UPDATE rollout_flags SET mode = ?, members = ?, items = ?, kiosks = ?,"
                " percent = ?, reason = ?, changed_by = ?, changed_at = ?"
                " WHERE name = ? AND (tripped_at IS NULL OR ?)",
                (
                    setting.mode.value,
                    json.dumps(list(setting.members)),
                    json.dumps(list(setting.items)),
                    json.dumps(list(setting.kiosks)),
                    setting.percent,
                    reason,
                    actor,
                    now,
                    FLAG,
                    while_tripped,
                ),
            )
            if not changed:
                now_row = flag_from_row(await self._tx_one(tx, FLAG_SQL, (FLAG,)), self._moment)
                raise FlagRefusedError(
                    f"the circuit breaker tripped at {now_row.tripped_at:%Y-%m-%d %H:%M:%S} UTC"
                    f" ({now_row.trip_reason}); reset it first (cs-admin breaker reset)"
                )
            await tx.audit(
                AuditEntry(
                    now,
                    actor,
                    action,
                    reason=reason,
                    detail={
                        "flag": FLAG,
                        "mode": setting.mode.value,
                        "members": list(setting.members),
                        "items": list(setting.items),
                        "kiosks": list(setting.kiosks),
                        "percent": setting.percent,
                        "was": before.setting.mode.value,
                    },
                )
            )
            return flag_from_row(await self._tx_one(tx, FLAG_SQL, (FLAG,)), self._moment)

    async def trip_breaker(self, why: str, detail: dict[str, Any], now: datetime) -> bool:
        """Turn checkout off for the breaker; only the first of racing instances trips it."""
        async with self._rollout_tx() as tx:
            tripped = await self._tx_exec(
                tx,
                "UPDATE rollout_flags SET mode = 'off', reason = ?, changed_by = ?,"
                " changed_at = ?, tripped_at = ?, trip_reason = ?"
                " WHERE name = ? AND tripped_at IS NULL",
                (f"circuit breaker: {why}", BREAKER_ACTOR, now, now, why, FLAG),
            )
            if tripped:
                await tx.audit(
                    AuditEntry(
                        now, BREAKER_ACTOR, "breaker.tripped", reason=why, detail=dict(detail)
                    )
                )
        return tripped == 1

    async def reset_breaker(self, reason: str, actor: str, now: datetime) -> FlagRow:
        """Clear a trip; checkout stays off until an admin sets the flag again."""
        async with self._rollout_tx() as tx:
            cleared = await self._tx_exec(
                tx,
                "UPDATE rollout_flags SET tripped_at = NULL, trip_reason = NULL,"
                " breaker_reset_at = ? WHERE name = ? AND tripped_at IS NOT NULL",
                (now, FLAG),
            )
            if not cleared:
                raise FlagRefusedError("the circuit breaker is not tripped")
            await tx.audit(AuditEntry(now, actor, "breaker.reset", reason=reason))
            return flag_from_row(await self._tx_one(tx, FLAG_SQL, (FLAG,)), self._moment)

    async def window_counts(self, since: datetime, error_reasons: Sequence[str]) -> WindowCounts:
        """Code scans decided since ``since``, those with an error reason, security alerts."""
        marks = ", ".join("?" for _ in error_reasons) or "NULL"
        scans = await self._read_one(
            "SELECT count(*) FROM scan_events WHERE decided_at >= ? AND code_hash IS NOT NULL",
            (since,),
        )
        # Errors per kiosk, so one kiosk's share can be capped (see central.breaker); messages
        # too broken to decide leave an audit row instead of a verdict.
        by_kiosk = await self._read_all(
            "SELECT kiosk_id, sum(n) FROM ("  # noqa: S608 - only ? marks
            " SELECT kiosk_id, count(*) AS n FROM scan_events"
            f" WHERE decided_at >= ? AND code_hash IS NOT NULL AND reason IN ({marks})"
            " GROUP BY kiosk_id"
            " UNION ALL SELECT kiosk_id, count(*) AS n FROM qr_audit_log"
            " WHERE action = 'scan.dropped' AND at >= ? GROUP BY kiosk_id"
            ") AS errors GROUP BY kiosk_id",
            (since, *error_reasons, since),
        )
        dropped = await self._read_one(
            "SELECT count(*) FROM qr_audit_log WHERE action = 'scan.dropped' AND at >= ?",
            (since,),
        )
        # An alert about a kiosk counts once per kiosk: one kiosk cooled down again and
        # again is contained there, not a fleet-wide incident.
        alerts = await self._read_one(
            "SELECT count(DISTINCT kiosk_id),"
            " coalesce(sum(CASE WHEN kiosk_id IS NULL THEN 1 ELSE 0 END), 0)"
            " FROM qr_audit_log WHERE action = 'security.alert' AND at >= ?",
            (since,),
        )
        assert scans is not None
        assert dropped is not None
        assert alerts is not None
        errors = tuple(sorted((int(row[1]) for row in by_kiosk), reverse=True))
        return WindowCounts(
            attempts=int(scans[0]) + int(dropped[0]),
            errors=sum(errors),
            security_alerts=int(alerts[0]) + int(alerts[1]),
            kiosk_errors=errors,
        )

    async def ping(self) -> None:
        """A trivial query: raises if the database does not answer."""
        await self._read_one("SELECT 1", ())


# Defined in central/storage/rows.py; they are still importable from here.
__all__ = ["FlagMode", "FlagRow", "FlagSetting", "WindowCounts"]
