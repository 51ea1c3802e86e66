"""Topic names under the versioned root: built, and parsed back into typed routes, in one place."""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from broker.errors import ContractError
from broker.ids import is_id

ROOT = "cs/v1"
SHARE_GROUP = "central"

# Central consumes every kiosk's scans through an MQTT 5 shared subscription so that
# several central instances split the stream without coordinating.
SCAN_FILTER = f"{ROOT}/kiosk/+/scan"
SCAN_SHARED = f"$share/{SHARE_GROUP}/{SCAN_FILTER}"
STATUS_FILTER = f"{ROOT}/kiosk/+/status"
VERDICT_FILTER = f"{ROOT}/kiosk/+/verdict"  # every kiosk's verdicts: tests, benchmarks
AVAILABILITY_FILTER = f"{ROOT}/shelf/+/item/+/availability"
ALERTS = f"{ROOT}/alerts"


def _check(kind: str, value: str) -> str:
    if not is_id(value):
        raise ContractError("bad_topic", f"{kind} id {value!r} is not a valid id")
    return value


def scan(kiosk_id: str) -> str:
    """Kiosk → central, QoS 1: scans and session ends."""
    return f"{ROOT}/kiosk/{_check('kiosk', kiosk_id)}/scan"


def verdict(kiosk_id: str) -> str:
    """Central → the scanning kiosk, QoS 1."""
    return f"{ROOT}/kiosk/{_check('kiosk', kiosk_id)}/verdict"


def status(kiosk_id: str) -> str:
    """Kiosk presence, retained, with last will ``offline``."""
    return f"{ROOT}/kiosk/{_check('kiosk', kiosk_id)}/status"


def config(kiosk_id: str) -> str:
    """Central → kiosk configuration, retained."""
    return f"{ROOT}/kiosk/{_check('kiosk', kiosk_id)}/config"


def command(kiosk_id: str) -> str:
    """Central → kiosk one-off commands (identify), not retained."""
    return f"{ROOT}/kiosk/{_check('kiosk', kiosk_id)}/command"


def availability(shelf_id: str, item_id: str) -> str:
    """One item's availability, retained, so a rebooted kiosk knows it at once."""
    return f"{ROOT}/shelf/{_check('shelf', shelf_id)}/item/{_check('item', item_id)}/availability"


def shelf_availability(shelf_id: str) -> str:
    """Filter for every item on one shelf."""
    return f"{ROOT}/shelf/{_check('shelf', shelf_id)}/item/+/availability"


# -- reading a topic back: one parser, typed routes ------------------------------------------

# A topic name is at most a few levels of ids; anything much longer is an attack or a bug,
# and is refused before it is split.
MAX_TOPIC_LENGTH = 256


@dataclass(frozen=True, slots=True)
class KioskRoute:
    """A topic under ``cs/v1/kiosk/<kiosk id>/``; the subclass names the leaf."""

    kiosk_id: str


@dataclass(frozen=True, slots=True)
class ScanRoute(KioskRoute):
    """``cs/v1/kiosk/<kiosk>/scan``: a kiosk's scans and session ends."""


@dataclass(frozen=True, slots=True)
class VerdictRoute(KioskRoute):
    """``cs/v1/kiosk/<kiosk>/verdict``: central's answer to that kiosk."""


@dataclass(frozen=True, slots=True)
class StatusRoute(KioskRoute):
    """``cs/v1/kiosk/<kiosk>/status``: that kiosk's retained presence."""


@dataclass(frozen=True, slots=True)
class ConfigRoute(KioskRoute):
    """``cs/v1/kiosk/<kiosk>/config``: that kiosk's retained configuration."""


@dataclass(frozen=True, slots=True)
class CommandRoute(KioskRoute):
    """``cs/v1/kiosk/<kiosk>/command``: a one-off command (identify)."""


@dataclass(frozen=True, slots=True)
class AvailabilityRoute:
    """``cs/v1/shelf/<shelf>/item/<item>/availability``: one item's retained state."""

    shelf_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class AlertsRoute:
    """``cs/v1/alerts``: central's security alerts."""


Route = (
    ScanRoute
    | VerdictRoute
    | StatusRoute
    | ConfigRoute
    | CommandRoute
    | AvailabilityRoute
    | AlertsRoute
)


class TopicRefusal(StrEnum):
    """Why a topic is not one of the contract's."""

    TOO_LONG = "too_long"
    WRONG_ROOT = "wrong_root"  # not under cs/v1 (another version, $share/..., $SYS/...)
    UNKNOWN_KIND = "unknown_kind"  # under the root, but no topic the contract names
    BAD_ID = "bad_id"  # an id level that is not an id (empty, wildcard, lower case ...)


@dataclass(frozen=True, slots=True)
class BadTopic:
    """A refused topic, as a value: the caller counts it by ``reason`` and drops it."""

    reason: TopicRefusal


_KIOSK_LEAVES: dict[str, Callable[[str], Route]] = {
    "scan": ScanRoute,
    "verdict": VerdictRoute,
    "status": StatusRoute,
    "config": ConfigRoute,
    "command": CommandRoute,
}
_ROOT_LEVELS = tuple(ROOT.split("/"))


# A topic is read up to three times per message on central's hot path, and a fleet has a
# few thousand distinct ones; a route is immutable, so the answers are kept (bounded, so
# a flood of made-up topics only evicts).
@functools.lru_cache(maxsize=8192)
def route(topic: str) -> Route | BadTopic:
    """What ``topic`` is in the contract, or why it is none of it.

    Every level is checked: the exact number of levels, the root, each id's shape. A
    message's topic never holds wildcards or a ``$share/`` prefix (those belong to
    subscriptions), so such a topic is refused like any other.
    """
    if len(topic) > MAX_TOPIC_LENGTH:
        return BadTopic(TopicRefusal.TOO_LONG)
    levels = topic.split("/")
    if tuple(levels[:2]) != _ROOT_LEVELS:
        return BadTopic(TopicRefusal.WRONG_ROOT)
    return _under_root(levels[2:])


def _under_root(levels: list[str]) -> Route | BadTopic:
    ids: tuple[str, ...]
    match levels:
        case ["alerts"]:
            return AlertsRoute()
        case ["kiosk", kiosk_id, leaf] if leaf in _KIOSK_LEAVES:
            ids, parsed = (kiosk_id,), _KIOSK_LEAVES[leaf](kiosk_id)
        case ["shelf", shelf_id, "item", item_id, "availability"]:
            ids, parsed = (shelf_id, item_id), AvailabilityRoute(shelf_id, item_id)
        case _:
            return BadTopic(TopicRefusal.UNKNOWN_KIND)
    return parsed if all(is_id(i) for i in ids) else BadTopic(TopicRefusal.BAD_ID)


def kiosk_of(topic: str) -> str:
    """The kiosk id in a ``cs/v1/kiosk/<id>/<leaf>`` topic; ContractError for any other."""
    parsed = route(topic)
    if isinstance(parsed, KioskRoute):
        return parsed.kiosk_id
    why = parsed.reason.value if isinstance(parsed, BadTopic) else "not a kiosk topic"
    raise ContractError("bad_topic", f"{topic[:80]!r}: {why}")
