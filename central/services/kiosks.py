"""The fleet as admins run it: each kiosk's presence and health, its configuration, identify."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from broker import topics
from broker.ids import ID_PATTERN
from broker.messages import (
    CameraConfig,
    FeedbackConfig,
    KioskCommand,
    KioskConfig,
    KioskState,
    PinConfig,
    UpdateProgress,
    encode,
)
from central import rollout
from central.clock import Clock
from central.consumer import Consumer, Publisher
from central.services.refusals import Refusal, RefusedError, audited
from central.storage.base import AuditEntry, Store
from central.storage.kiosk_config import KioskRecord

_GROUPS = ("pins", "camera", "feedback")


class ConfigPatch(BaseModel):
    """A change to a kiosk's configuration: absent fields stay as they are.

    Inside ``pins``, ``camera`` and ``feedback`` only the fields given change; a field
    given as null goes back to the kiosk's own setting, and so does a whole group given
    as null.
    """

    model_config = ConfigDict(extra="forbid")

    shelf_id: str | None = Field(default=None, pattern=ID_PATTERN, description="Shelf it serves.")
    session_timeout_s: float | None = Field(
        default=None, gt=0, le=3600, description="Idle seconds before a session ends."
    )
    pins: PinConfig | None = Field(default=None, description="GPIO pins (BCM) to change.")
    camera: CameraConfig | None = Field(default=None, description="Camera settings to change.")
    feedback: FeedbackConfig | None = Field(default=None, description="Buzzer settings.")
    return_point: bool | None = Field(
        default=None,
        description="Take returns of every shelf's items (a desk, a drop box); otherwise"
        " only of its own shelf's. Central's setting: not sent to the kiosk.",
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> ConfigPatch:
        if not self.model_fields_set:
            raise ValueError("nothing to change")
        for name in ("shelf_id", "session_timeout_s", "return_point"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared")
        return self


class KioskView(BaseModel):
    """One kiosk as admins watch it: central's record and what the kiosk last reported."""

    kiosk_id: str
    shelf_id: str
    state: str = Field(description="online, offline, stopped, or unknown (never heard from).")
    online: bool
    last_seen: datetime | None = Field(description="When its status last arrived.")
    software_version: str | None
    config_version: int = Field(description="The configuration central holds for it.")
    running_config_version: int | None = Field(description="The one the kiosk says it runs.")
    config_problem: str | None = Field(description="What of its configuration it cannot apply.")
    outbox_depth: int | None
    camera_ok: bool | None
    camera_fps: float | None
    decode_ms: float | None = Field(description="Median decode time of recent frames.")
    update: UpdateProgress | None = Field(
        default=None, description="Where the newest fleet update offered to it stands."
    )
    blocked_until: datetime | None
    blocked: bool
    retired: bool
    return_point: bool = Field(description="Takes returns of every shelf's items.")


class KioskDetail(KioskView):
    """One kiosk with its whole configuration."""

    config: KioskConfig


class IdentifyOut(BaseModel):
    """An identify command sent."""

    kiosk_id: str
    command: str
    online: bool = Field(description="Whether the kiosk is online to see it now.")


def patched(config: KioskConfig, patch: ConfigPatch) -> KioskConfig:
    """``config`` with ``patch`` applied (the version is the store's to bump)."""
    given = patch.model_fields_set
    update: dict[str, Any] = {
        name: getattr(patch, name) for name in ("shelf_id", "session_timeout_s") if name in given
    }
    for name in _GROUPS:
        if name not in given:
            continue
        change = getattr(patch, name)
        if change is None:
            update[name] = None
            continue
        current = getattr(config, name)
        merged = {
            **(current.model_dump() if current is not None else {}),
            **change.model_dump(include=change.model_fields_set),
        }
        group = type(change).model_validate(merged)
        update[name] = group if any(v is not None for v in merged.values()) else None
    return config.model_copy(update=update)


@dataclass(frozen=True)
class Kiosks:
    """The fleet on one central instance: records, presence, configuration, commands."""

    store: Store
    clock: Clock
    publisher: Publisher
    consumer: Consumer
    actor: str

    def _view(self, record: KioskRecord) -> KioskDetail:
        config = record.config
        status = self.consumer.presence.get(config.kiosk_id)
        now = self.clock.now()
        return KioskDetail(
            kiosk_id=config.kiosk_id,
            shelf_id=config.shelf_id,
            state=status.state.value if status else "unknown",
            online=status is not None and status.state is KioskState.ONLINE,
            last_seen=self.consumer.seen.get(config.kiosk_id),
            software_version=status.software_version if status else None,
            config_version=config.config_version,
            running_config_version=status.config_version if status else None,
            config_problem=status.config_problem if status else None,
            outbox_depth=status.outbox_depth if status else None,
            camera_ok=status.camera_ok if status else None,
            camera_fps=status.camera_fps if status else None,
            decode_ms=status.decode_ms if status else None,
            update=status.update if status else None,
            blocked_until=record.blocked_until,
            blocked=record.blocked_until is not None and record.blocked_until > now,
            retired=record.retired,
            return_point=record.return_point,
            config=config,
        )

    async def _record(self, kiosk_id: str) -> KioskRecord:
        for record in await self.store.kiosk_records():
            if record.config.kiosk_id == kiosk_id:
                return record
        raise RefusedError(Refusal.NOT_FOUND, f"no kiosk {kiosk_id}")

    async def add(self, kiosk_id: str, shelf_id: str, session_timeout_s: float) -> KioskConfig:
        """A new kiosk, its configuration retained for it to find when it connects."""
        await audited(
            self.store,
            self.clock,
            self.actor,
            self.store.add_kiosk(
                kiosk_id,
                shelf_id,
                self.clock.now(),
                self.actor,
                session_timeout_s=session_timeout_s,
            ),
            "kiosk.enrol",
            kiosk_id=kiosk_id,
        )
        configs = await rollout.kiosk_configs(self.store)
        config = next(c for c in configs if c.kiosk_id == kiosk_id)
        self.publisher.publish(topics.config(kiosk_id), encode(config), retain=True)
        return config

    async def views(self) -> list[KioskView]:
        """Every kiosk as admins watch it, without its whole configuration."""
        return [
            KioskView.model_validate(self._view(r).model_dump(exclude={"config"}))
            for r in await self.store.kiosk_records()
        ]

    async def detail(self, kiosk_id: str) -> KioskDetail:
        """One kiosk with its whole configuration."""
        return self._view(await self._record(kiosk_id))

    async def configure(self, kiosk_id: str, patch: ConfigPatch) -> KioskConfig:
        """Apply a change to a kiosk's configuration and retain it for the kiosk."""
        try:
            config = await audited(
                self.store,
                self.clock,
                self.actor,
                self.store.configure_kiosk(
                    kiosk_id,
                    lambda current: patched(current, patch),
                    self.clock.now(),
                    self.actor,
                    return_point=patch.return_point,
                ),
                "kiosk.configure",
                kiosk_id=kiosk_id,
            )
        except ValidationError as exc:
            # The change is fine alone but not with what is already set (two devices on
            # one pin): nothing was written.
            raise RefusedError(Refusal.INVALID, _first_error(exc)) from exc
        if config is None:
            raise RefusedError(Refusal.NOT_FOUND, f"no kiosk {kiosk_id}")
        # Retained: a kiosk that is off now gets it when it next connects.
        self.publisher.publish(topics.config(kiosk_id), encode(config), retain=True)
        return config

    async def identify(self, kiosk_id: str) -> IdentifyOut:
        """Make a kiosk flash and beep so someone can find it."""
        record = await self._record(kiosk_id)
        if record.retired:
            raise RefusedError(Refusal.CONFLICT, f"kiosk {kiosk_id} is retired")
        now = self.clock.now()
        async with self.store.write() as tx:
            await tx.audit(AuditEntry(now, self.actor, "kiosk.identify", kiosk_id=kiosk_id))
        # Not retained: a kiosk that comes back an hour later must not start flashing.
        self.publisher.publish(
            topics.command(kiosk_id), encode(KioskCommand(command="identify", issued_at=now))
        )
        status = self.consumer.presence.get(kiosk_id)
        return IdentifyOut(
            kiosk_id=kiosk_id,
            command="identify",
            online=status is not None and status.state is KioskState.ONLINE,
        )


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
