"""Kiosk configuration rows as contract messages, and what a change changed (both backends)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from broker.messages import KioskConfig
from central.storage.base import AuditEntry
from central.storage.rows import Change, KioskRecord

_GROUPS = ("pins", "camera", "feedback")


def config_from_row(row: Sequence[Any]) -> KioskConfig:
    """A KioskConfig from a kiosks row that starts with kiosk_id, shelf_id, config_version,
    session_timeout_s, device_config."""
    kiosk_id, shelf_id, version, timeout, device_config = row[:5]
    return KioskConfig(
        kiosk_id=kiosk_id,
        shelf_id=shelf_id,
        config_version=version,
        session_timeout_s=timeout,
        **json.loads(device_config),
    )


def device_config(config: KioskConfig) -> str:
    """The JSON stored in ``kiosks.device_config``: the groups, unset fields left out."""
    groups = config.model_dump(mode="json", include=set(_GROUPS), exclude_none=True)
    return json.dumps({k: v for k, v in groups.items() if v}, sort_keys=True)


def changes(old: KioskConfig, new: KioskConfig) -> dict[str, list[Any]]:
    """Every setting that differs, as ``{"camera.fps": [old, new]}``, for the audit row."""
    before, after = _flat(old), _flat(new)
    return {
        key: [before.get(key), after.get(key)]
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key) and key != "config_version"
    }


def _flat(config: KioskConfig) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.model_dump(mode="json", exclude={"v", "kiosk_id"}).items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items() if v is not None})
        else:
            flat[key] = value
    return flat


def configured(old: KioskConfig, new: KioskConfig, now: datetime, actor: str) -> AuditEntry:
    """The audit row for one configuration change."""
    return AuditEntry(
        now,
        actor,
        "kiosk.configure",
        kiosk_id=new.kiosk_id,
        detail={"config_version": new.config_version, "changes": changes(old, new)},
    )


# Defined in central/storage/rows.py; they are still importable from here.
__all__ = ["Change", "KioskRecord"]
