"""The rollout flag's admission test, and what each kiosk is told (the refusal: central.rules)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

from broker import topics
from broker.messages import KioskConfig, encode
from central.publisher import Publisher
from central.storage.base import Store
from central.storage.rollout import FlagMode, FlagRow

log = logging.getLogger(__name__)


def bucket(member_id: str) -> int:
    """The member's place in 0..99 for a percentage rollout.

    A hash of the member id alone, so a member admitted at 10 % stays admitted at 20 %,
    on every central instance and after every restart.
    """
    digest = hashlib.sha256(member_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def admits(flag: FlagRow, *, member_id: str, kiosk_id: str, item_id: str | None) -> bool:
    """Whether ``member_id`` may check out (``item_id``, if known yet) at ``kiosk_id``.

    In allow-list mode every list that is not empty must name the checkout's member, kiosk
    and item (each list narrows the pilot); the item list is judged per item, not when the
    session opens.
    """
    if flag.tripped:
        return False
    setting = flag.setting
    if setting.mode is FlagMode.ON:
        return True
    if setting.mode is FlagMode.PERCENTAGE:
        return bucket(member_id) < setting.percent
    if setting.mode is FlagMode.ALLOW_LIST:
        return (
            (not setting.members or member_id in setting.members)
            and (not setting.kiosks or kiosk_id in setting.kiosks)
            and (item_id is None or not setting.items or item_id in setting.items)
        )
    return False


def kiosk_checkout_enabled(flag: FlagRow, kiosk_id: str) -> bool:
    """Whether a kiosk should look open for checkout (its idle LED), whoever walks up."""
    if flag.tripped:
        return False
    setting = flag.setting
    if setting.mode is FlagMode.ON:
        return True
    if setting.mode is FlagMode.PERCENTAGE:
        return setting.percent > 0
    if setting.mode is FlagMode.ALLOW_LIST:
        return not setting.kiosks or kiosk_id in setting.kiosks
    return False


async def kiosk_configs(store: Store, flag: FlagRow | None = None) -> Sequence[KioskConfig]:
    """Every active kiosk's configuration, with ``checkout_enabled`` from the flag."""
    flag = flag or await store.get_flag()
    return [
        config.model_copy(
            update={"checkout_enabled": kiosk_checkout_enabled(flag, config.kiosk_id)}
        )
        for config in await store.kiosk_configs()
    ]


async def publish_configs(store: Store, publisher: Publisher, flag: FlagRow | None = None) -> int:
    """Republish every kiosk's retained configuration (after the flag changed); how many."""
    configs = await kiosk_configs(store, flag)
    for config in configs:
        publisher.publish(topics.config(config.kiosk_id), encode(config), retain=True)
    log.info("republished %s kiosk configurations", len(configs))
    return len(configs)
