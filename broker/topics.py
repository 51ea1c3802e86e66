"""Topic names under the versioned root, built in one place for both sides."""

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


def kiosk_of(topic: str) -> str:
    """The kiosk id in a ``cs/v1/kiosk/<id>/<leaf>`` topic."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ROOT or parts[2] != "kiosk":
        raise ContractError("bad_topic", f"{topic!r} is not a kiosk topic")
    return _check("kiosk", parts[3])
