"""Topics parsed back into typed routes: every topic the contract builds, and hostile ones."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker import topics
from broker.errors import ContractError
from broker.ids import ID_PATTERN
from broker.topics import (
    AlertsRoute,
    AvailabilityRoute,
    BadTopic,
    CommandRoute,
    ConfigRoute,
    KioskRoute,
    Route,
    ScanRoute,
    StatusRoute,
    TopicRefusal,
    VerdictRoute,
)

KIOSK = "KIOSK-A1"

BUILT: dict[str, tuple[Callable[[str], str], type[KioskRoute]]] = {
    "scan": (topics.scan, ScanRoute),
    "verdict": (topics.verdict, VerdictRoute),
    "status": (topics.status, StatusRoute),
    "config": (topics.config, ConfigRoute),
    "command": (topics.command, CommandRoute),
}


@pytest.mark.parametrize(("build", "kind"), BUILT.values(), ids=BUILT.keys())
def test_every_kiosk_topic_routes_back_to_its_kind_and_kiosk(
    build: Callable[[str], str], kind: type[KioskRoute]
) -> None:
    parsed = topics.route(build(KIOSK))

    assert parsed == kind(KIOSK)
    assert type(parsed) is kind  # a verdict is never mistaken for a status of the same kiosk


def test_availability_routes_to_its_shelf_and_item() -> None:
    assert topics.route(topics.availability("SHELF-A", "DRILL-01")) == AvailabilityRoute(
        "SHELF-A", "DRILL-01"
    )


def test_alerts_route() -> None:
    assert topics.route(topics.ALERTS) == AlertsRoute()


_id = st.from_regex(ID_PATTERN, fullmatch=True)


@given(kiosk_id=_id, shelf_id=_id, item_id=_id)
def test_whatever_a_builder_makes_routes_back_to_the_same_ids(
    kiosk_id: str, shelf_id: str, item_id: str
) -> None:
    for build, kind in BUILT.values():
        assert topics.route(build(kiosk_id)) == kind(kiosk_id)
    assert topics.route(topics.availability(shelf_id, item_id)) == AvailabilityRoute(
        shelf_id, item_id
    )


HOSTILE: dict[str, tuple[str, TopicRefusal]] = {
    "shared-subscription": ("$share/central/cs/v1/kiosk/KIOSK-A1/scan", TopicRefusal.WRONG_ROOT),
    "sys": ("$SYS/broker/clients/connected", TopicRefusal.WRONG_ROOT),
    "other-version": ("cs/v2/kiosk/KIOSK-A1/verdict", TopicRefusal.WRONG_ROOT),
    "other-root": ("xx/v1/kiosk/KIOSK-A1/verdict", TopicRefusal.WRONG_ROOT),
    "leading-slash": ("/cs/v1/kiosk/KIOSK-A1/verdict", TopicRefusal.WRONG_ROOT),
    "empty": ("", TopicRefusal.WRONG_ROOT),
    "root-only": ("cs/v1", TopicRefusal.UNKNOWN_KIND),
    "extra-level": ("cs/v1/kiosk/KIOSK-A1/verdict/x", TopicRefusal.UNKNOWN_KIND),
    "trailing-slash": ("cs/v1/kiosk/KIOSK-A1/verdict/", TopicRefusal.UNKNOWN_KIND),
    "missing-kiosk": ("cs/v1/kiosk/verdict", TopicRefusal.UNKNOWN_KIND),
    "unknown-leaf": ("cs/v1/kiosk/KIOSK-A1/firmware", TopicRefusal.UNKNOWN_KIND),
    "leaf-case": ("cs/v1/kiosk/KIOSK-A1/VERDICT", TopicRefusal.UNKNOWN_KIND),
    "unknown-kind": ("cs/v1/member/M-1/verdict", TopicRefusal.UNKNOWN_KIND),
    "alerts-extra": ("cs/v1/alerts/KIOSK-A1", TopicRefusal.UNKNOWN_KIND),
    "availability-short": ("cs/v1/shelf/SHELF-A/item/availability", TopicRefusal.UNKNOWN_KIND),
    "availability-extra": (
        "cs/v1/shelf/SHELF-A/item/DRILL-01/availability/x",
        TopicRefusal.UNKNOWN_KIND,
    ),
    "empty-kiosk": ("cs/v1/kiosk//verdict", TopicRefusal.BAD_ID),
    "wildcard-kiosk": ("cs/v1/kiosk/+/verdict", TopicRefusal.BAD_ID),
    "hash-kiosk": ("cs/v1/kiosk/#/verdict", TopicRefusal.BAD_ID),
    "lower-case-kiosk": ("cs/v1/kiosk/kiosk-a1/verdict", TopicRefusal.BAD_ID),
    "dotted-kiosk": ("cs/v1/kiosk/KIOSK.A1/verdict", TopicRefusal.BAD_ID),
    "nul-in-kiosk": ("cs/v1/kiosk/KIOSK\x00A1/verdict", TopicRefusal.BAD_ID),
    "long-kiosk": (f"cs/v1/kiosk/{'K' * 33}/verdict", TopicRefusal.BAD_ID),
    "wildcard-item": ("cs/v1/shelf/SHELF-A/item/+/availability", TopicRefusal.BAD_ID),
    "bad-shelf": ("cs/v1/shelf/shelf a/item/DRILL-01/availability", TopicRefusal.BAD_ID),
    "huge": ("cs/v1/kiosk/" + "A/" * 10_000 + "verdict", TopicRefusal.TOO_LONG),
}


@pytest.mark.parametrize(("topic", "reason"), HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_topic_is_refused_with_its_reason(topic: str, reason: TopicRefusal) -> None:
    assert topics.route(topic) == BadTopic(reason)


@given(st.text(max_size=300))
def test_any_text_gets_a_route_or_a_refusal_never_an_exception(topic: str) -> None:
    parsed: Route | BadTopic = topics.route(topic)

    if isinstance(parsed, KioskRoute):
        # Only what a builder would make is accepted.
        assert topic == f"{topics.ROOT}/kiosk/{parsed.kiosk_id}/{topic.rsplit('/', 1)[-1]}"


def test_kiosk_of_names_the_kiosk_and_refuses_everything_else() -> None:
    assert topics.kiosk_of(topics.status(KIOSK)) == KIOSK
    for topic in ("cs/v1/kiosk/+/status", topics.availability("SHELF-A", "DRILL-01")):
        with pytest.raises(ContractError) as caught:
            topics.kiosk_of(topic)
        assert caught.value.reason == "bad_topic"
