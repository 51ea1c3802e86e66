"""The circuit breaker judged from the database on both stores, with a clock the test moves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from broker import topics
from broker.messages import Reason, SecurityAlert, parse_message
from central.breaker import Breaker, BreakerPolicy
from central.clock import FakeClock
from central.metrics import Metrics
from central.mqtt import Inbound
from central.storage.base import AuditEntry
from central.storage.postgres import PostgresStore
from central.storage.rollout import FlagMode, FlagSetting
from central.storage.sqlite import SqliteStore
from central.tokens import TokenSigner
from tests.integration.storage.test_ledger import Desk
from tests.unit.central.support import ADA, ADMIN, DRILL, KIOSK_A, KIOSK_B, SHELF, AnyStore

KIOSK_C = "KIOSK-C"
KIOSKS = (KIOSK_A, KIOSK_B, KIOSK_C)


@dataclass
class Sent:
    """Stands in for the MQTT link: what the breaker published."""

    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        self.messages.append((topic, payload, retain))

    def ack(self, message: Inbound) -> None:
        raise AssertionError("the breaker acknowledges nothing")

    def on(self, topic: str) -> list[bytes]:
        return [payload for t, payload, _ in self.messages if t == topic]


@dataclass
class Rig:
    desk: Desk
    breaker: Breaker
    sent: Sent
    metrics: Metrics

    async def scans(self, good: int, bad: int, kiosks: tuple[str, ...] = KIOSKS) -> None:
        """``good`` scans a member caused (no session), ``bad`` with a failing signature,
        the bad ones spread over ``kiosks`` in turn (a fault of the system shows everywhere).
        """
        for _ in range(good):
            verdict = (await self.desk.scan(self.desk.label(DRILL))).verdict
            assert verdict.reason is Reason.NO_SESSION
        forged = self.desk.label(DRILL)[:-4] + "AAAA"
        for n in range(bad):
            outcome = await self.desk.scan(forged, kiosks[n % len(kiosks)])
            assert outcome.verdict.reason is Reason.BAD_SIGNATURE

    async def alert(self, kiosk_id: str | None = None) -> None:
        async with self.desk.store.write() as tx:
            await tx.audit(
                AuditEntry(
                    self.desk.clock.now(),
                    "system",
                    "security.alert",
                    reason="test",
                    kiosk_id=kiosk_id,
                )
            )

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


POLICY = BreakerPolicy(min_scans=50)


@pytest.fixture
async def rig(library: AnyStore, signer: TokenSigner, clock: FakeClock) -> Rig:
    await library.add_kiosk(KIOSK_C, SHELF, clock.now(), ADMIN)
    sent, metrics = Sent(), Metrics()
    return Rig(
        Desk(library, signer, clock), Breaker(library, clock, sent, metrics, POLICY), sent, metrics
    )


async def test_an_error_rate_above_five_percent_trips_it_and_checkout_goes_off(rig: Rig) -> None:
    await rig.scans(good=47, bad=3)  # 6 % of 50
    assert await rig.breaker.evaluate()
    flag = await rig.desk.store.get_flag()
    assert flag.tripped
    assert flag.setting.mode is FlagMode.OFF
    assert flag.trip_reason == "error rate 6.0% over 10 min (3 of 50 code scans at 3 kiosks)"
    refused = (await rig.desk.scan(await rig.desk.pass_for(ADA))).verdict
    assert refused.reason is Reason.FEATURE_DISABLED
    # Operators hear it: an alert, an audit row, the gauge, and kiosks told to show it.
    (alert,) = rig.sent.on(topics.ALERTS)
    assert parse_message(SecurityAlert, alert).kind == "breaker.tripped"
    tripped = [r for r in await rig.desk.store.audit_tail(100) if r.action == "breaker.tripped"]
    assert [(r.actor, r.detail["scans"], r.detail["errors"]) for r in tripped] == [
        ("system:breaker", 50, 3)
    ]
    assert rig.gauge("qr_breaker_tripped") == 1
    assert rig.gauge("qr_breaker_trips_total") == 1
    assert rig.gauge("qr_rollout_mode", mode="off") == 1
    configs = [rig.sent.on(topics.config(k)) for k in KIOSKS]
    assert all(b'"checkout_enabled":false' in c[-1] for c in configs)
    # Tripped is tripped: evaluating again does nothing more.
    assert not await rig.breaker.evaluate()
    assert len(rig.sent.on(topics.ALERTS)) == 1


async def test_five_percent_exactly_does_not_trip(rig: Rig) -> None:
    await rig.scans(good=57, bad=3)  # 5 % of 60
    assert not await rig.breaker.evaluate()
    assert not (await rig.desk.store.get_flag()).tripped
    assert rig.gauge("qr_breaker_tripped") == 0
    assert rig.gauge("qr_rollout_mode", mode="on") == 1


async def test_too_few_scans_never_trip_it_whatever_the_rate(rig: Rig) -> None:
    await rig.scans(good=40, bad=9)  # 18 %, but 49 scans
    assert not await rig.breaker.evaluate()
    await rig.scans(good=1, bad=0)
    assert await rig.breaker.evaluate()


async def test_members_own_refusals_are_not_errors(rig: Rig) -> None:
    # Every scan refused, none of them a system fault: a quiet day, not an incident.
    await rig.scans(good=60, bad=0)
    assert not await rig.breaker.evaluate()


async def test_forgeries_at_one_kiosk_never_trip_it(rig: Rig) -> None:
    # A printed sheet of forged codes held up at one kiosk: its cool-down contains it.
    await rig.scans(good=50, bad=200, kiosks=(KIOSK_A,))
    assert not await rig.breaker.evaluate()
    assert (await rig.desk.store.get_flag()).setting.mode is FlagMode.ON
    # Nor at two: it takes errors at three kiosks (min_kiosks) to look like the system.
    await rig.scans(good=0, bad=200, kiosks=(KIOSK_B,))
    assert not await rig.breaker.evaluate()
    opened = (await rig.desk.scan(await rig.desk.pass_for(ADA), KIOSK_C)).verdict
    assert opened.reason is Reason.SESSION_OPENED
    # A third kiosk failing as well is fleet-wide: off.
    await rig.scans(good=0, bad=30, kiosks=(KIOSK_C,))
    assert await rig.breaker.evaluate()


async def test_alerts_about_one_kiosk_count_once(rig: Rig) -> None:
    for _ in range(5):
        await rig.alert(KIOSK_A)
    await rig.alert(KIOSK_B)
    assert not await rig.breaker.evaluate(), "alerts from two kiosks, however many"
    await rig.alert(KIOSK_C)
    assert await rig.breaker.evaluate()
    assert (await rig.desk.store.get_flag()).trip_reason == "3 security alerts in 10 min"


async def test_errors_older_than_the_window_do_not_count(rig: Rig) -> None:
    await rig.scans(good=0, bad=10)
    rig.desk.clock.advance(601)
    await rig.scans(good=50, bad=2)  # 4 % within the last ten minutes
    assert not await rig.breaker.evaluate()


async def test_three_security_alerts_in_the_window_trip_it(rig: Rig) -> None:
    await rig.alert()
    await rig.alert()
    rig.desk.clock.advance(601)
    await rig.alert()
    await rig.alert()
    assert not await rig.breaker.evaluate(), "one alert fell out of the window"
    await rig.alert()
    assert await rig.breaker.evaluate()
    assert (await rig.desk.store.get_flag()).trip_reason == "3 security alerts in 10 min"


async def test_after_a_reset_the_window_starts_again(rig: Rig) -> None:
    for _ in range(3):
        await rig.alert()
    assert await rig.breaker.evaluate()
    rig.desk.clock.advance(60)
    await rig.desk.store.reset_breaker("investigated", "admin:ops", rig.desk.clock.now())
    await rig.desk.store.set_flag(
        FlagSetting(FlagMode.ON), "back on", "admin:ops", rig.desk.clock.now()
    )
    # The alerts that tripped it are still inside ten minutes, but before the reset.
    assert not await rig.breaker.evaluate()
    await rig.desk.open_session(ADA)
    for _ in range(3):
        await rig.alert()
    assert await rig.breaker.evaluate()


async def test_two_instances_trip_it_once(rig: Rig, tmp_path: Path) -> None:
    other: AnyStore
    store = rig.desk.store
    if isinstance(store, SqliteStore):
        other = await SqliteStore(tmp_path / "central.db").open()
    else:
        assert isinstance(store, PostgresStore)
        other = await PostgresStore(store._dsn).open()
    try:
        second = Breaker(other, rig.desk.clock, rig.sent, Metrics(), POLICY)
        for _ in range(3):
            await rig.alert()
        # Both instances judge the same rows the same way; one wins the trip.
        results = await asyncio.gather(rig.breaker.evaluate(), second.evaluate())
        assert sorted(results) == [False, True]
        tripped = [r for r in await other.audit_tail(100) if r.action == "breaker.tripped"]
        assert len(tripped) == 1
        assert len(rig.sent.on(topics.ALERTS)) == 1
    finally:
        await other.close()
