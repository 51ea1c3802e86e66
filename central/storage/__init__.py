"""Central's storage: one interface, one implementation per database backend."""

from central.storage.base import (
    AuditEntry,
    CheckoutRow,
    ItemRow,
    KioskRow,
    MemberRow,
    PassUse,
    SessionRow,
    Store,
    Tx,
)

__all__ = [
    "AuditEntry",
    "CheckoutRow",
    "ItemRow",
    "KioskRow",
    "MemberRow",
    "PassUse",
    "SessionRow",
    "Store",
    "Tx",
]
