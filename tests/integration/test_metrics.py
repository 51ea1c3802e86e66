"""Central's Prometheus metrics, scraped after real scans through the real broker."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from broker import topics
from broker.messages import Verdict, encode
from testkit.probe import Probe
from tests.conftest import RunningCentral, seed_library
from tests.support.scans import ask, scan


async def scrape(admin: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await admin.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_verdicts_refusals_replays_and_drops_are_counted(
    central: RunningCentral, probe: Probe
) -> None:
    admin = central.admin
    await seed_library(admin)
    pass_code = (await admin.post("/members/M-1001/passes", json={})).json()["code"]
    probe.subscribe(topics.verdict("KIOSK-A1"))
    opened = scan("KIOSK-A1", pass_code)
    await ask(probe, opened)
    await ask(probe, scan("KIOSK-A1", pass_code))  # reused: ALREADY_USED
    await ask(probe, opened)  # redelivered: same verdict, not counted as a new scan
    probe.publish(topics.scan("KIOSK-A1"), b"{not json")
    # The consumer is still answering after the garbage.
    label = (await admin.get("/items/DRILL-01/label")).json()["code"]
    checked = await ask(probe, scan("KIOSK-A1", label))
    assert isinstance(checked, Verdict)

    metrics = await scrape(admin)
    assert metrics[("qr_scans_total", ())] == 3
    assert metrics[("qr_scans_success_total", (("reason", "SESSION_OPENED"),))] == 1
    assert metrics[("qr_scans_success_total", (("reason", "CHECKED_OUT"),))] == 1
    assert metrics[("qr_scans_failed_total", (("reason", "ALREADY_USED"),))] == 1
    assert metrics[("qr_scans_replayed_total", ())] == 1
    assert metrics[("qr_scans_dropped_total", (("kind", "not_json"),))] == 1
    assert metrics[("qr_validation_latency_seconds_count", ())] == 4
    assert metrics[("qr_db_conflicts_total", ())] == 0


async def test_metrics_need_the_admin_token(central: RunningCentral) -> None:
    async with httpx.AsyncClient(base_url=str(central.admin.base_url)) as anonymous:
        assert (await anonymous.get("/metrics")).status_code == 401
        assert (await anonymous.get("/health")).status_code == 200


async def test_connected_kiosks_follow_retained_status(
    central: RunningCentral, probe: Probe
) -> None:
    from datetime import UTC, datetime

    from broker.messages import KioskState, KioskStatus

    for kiosk_id, state in (("KIOSK-A1", KioskState.ONLINE), ("KIOSK-B1", KioskState.OFFLINE)):
        status = KioskStatus(
            kiosk_id=kiosk_id,
            state=state,
            software_version="t",
            config_version=1,
            at=datetime.now(UTC),
        )
        probe.publish(topics.status(kiosk_id), encode(status), retain=True)
    for _ in range(100):
        metrics = await scrape(central.admin)
        if metrics[("qr_kiosks_connected", ())] == 1:
            break
        await asyncio.sleep(0.05)
    assert metrics[("qr_kiosks_connected", ())] == 1
