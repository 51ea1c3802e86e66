"""A kiosk login flooding garbage is shut out at the broker, so the flood stops at its source."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from broker import topics
from broker.bundle import BUNDLE_FILE
from provisioning import pki
from testkit.secure_broker import Client, connect
from tests.conftest import seed_library
from tests.e2e.test_enrolment import admin
from tests.support.fleet import secure_fleet

pytestmark = pytest.mark.slow
NOT_AUTHORISED = 135


async def test_a_kiosk_flooding_garbage_is_shut_out_at_the_broker_and_its_neighbour_is_not(
    tmp_path: Path,
) -> None:
    async with secure_fleet(tmp_path) as fleet:
        await seed_library(fleet.central.admin)
        passwords = {}
        for kiosk_id in ("KIOSK-F1", "KIOSK-F2"):
            out_dir = tmp_path / kiosk_id
            code, _, err = await admin(
                fleet, "kiosk", "enrol", kiosk_id, "--shelf", "SHELF-A", "--out", str(out_dir)
            )
            assert code == 0, err
            passwords[kiosk_id] = json.loads((out_dir / BUNDLE_FILE).read_text())["mqtt_password"]

        def login(kiosk_id: str) -> tuple[Client, int]:
            client, rc = connect(
                fleet.broker.tls_port or 0,
                kiosk_id,
                passwords[kiosk_id],
                ca=fleet.tls_dir / pki.CA_CERT,
            )
            return client, int(rc.value)

        flooder, rc = await asyncio.to_thread(login, "KIOSK-F1")
        neighbour, rc2 = await asyncio.to_thread(login, "KIOSK-F2")
        try:
            assert (rc, rc2) == (0, 0)
            for n in range(200):  # garbage well past the block threshold (50 in 10 s)
                flooder.client.publish(topics.scan("KIOSK-F1"), b"not json %d" % n)
            shut_out = await asyncio.to_thread(flooder.disconnected.wait, 15.0)
            assert shut_out, "the flooding kiosk stayed connected"
            again, rc = await asyncio.to_thread(login, "KIOSK-F1")
            again.close()
            assert rc == NOT_AUTHORISED
            assert not neighbour.disconnected.is_set()
            # The broker shuts the flooder out at the threshold's message; the block's audit
            # row is written by the consumer's next turn, moments later.
            actions: list[str] = []
            for _ in range(100):
                audit = (await fleet.central.admin.get("/audit", params={"limit": 200})).json()
                actions = [row["action"] for row in audit]
                if "kiosk.block" in actions:
                    break
                await asyncio.sleep(0.1)
            assert "kiosk.block" in actions
        finally:
            flooder.close()
            neighbour.close()
