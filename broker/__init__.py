"""The wire contract between kiosks and central: topics, message models, code shapes."""

from broker import topics
from broker.codes import CodeKind, classify_code
from broker.errors import ContractError
from broker.messages import (
    PROTOCOL_VERSION,
    Availability,
    AvailabilityState,
    CodeScan,
    KioskCommand,
    KioskConfig,
    KioskEvent,
    KioskState,
    KioskStatus,
    Reason,
    SecurityAlert,
    SessionDone,
    Verdict,
    encode,
    parse_event,
    parse_message,
)

__all__ = [
    "PROTOCOL_VERSION",
    "Availability",
    "AvailabilityState",
    "CodeKind",
    "CodeScan",
    "ContractError",
    "KioskCommand",
    "KioskConfig",
    "KioskEvent",
    "KioskState",
    "KioskStatus",
    "Reason",
    "SecurityAlert",
    "SessionDone",
    "Verdict",
    "classify_code",
    "encode",
    "parse_event",
    "parse_message",
    "topics",
]
