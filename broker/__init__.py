"""The wire contract between kiosks and central: topics, message models, code shapes."""

from broker import topics
from broker.codes import CodeKind, classify_code
from broker.errors import ContractError
from broker.messages import (
    PROTOCOL_VERSION,
    Availability,
    AvailabilityState,
    CameraConfig,
    CodeScan,
    FeedbackConfig,
    KioskCommand,
    KioskConfig,
    KioskEvent,
    KioskState,
    KioskStatus,
    PinConfig,
    Reason,
    SecurityAlert,
    SessionDone,
    Sound,
    Verdict,
    encode,
    parse_event,
    parse_message,
)

__all__ = [
    "PROTOCOL_VERSION",
    "Availability",
    "AvailabilityState",
    "CameraConfig",
    "CodeKind",
    "CodeScan",
    "ContractError",
    "FeedbackConfig",
    "KioskCommand",
    "KioskConfig",
    "KioskEvent",
    "KioskState",
    "KioskStatus",
    "PinConfig",
    "Reason",
    "SecurityAlert",
    "SessionDone",
    "Sound",
    "Verdict",
    "classify_code",
    "encode",
    "parse_event",
    "parse_message",
    "topics",
]
