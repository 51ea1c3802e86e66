"""Fleet updates with real kiosk processes: staged rollout at idle only, self-rollback and
halting, refusal of tampered or wrongly signed artifacts, catching up after being away.

Each kiosk is a process started through ``kiosk.launch`` and restarted whenever it exits
(as systemd's ``Restart=always``); central serves releases over HTTPS from its own CA.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import segno
from PIL import Image

from broker import topics
from broker.local import LocalBroker
from broker.messages import Reason, Verdict, parse_message
from central import releases
from provisioning import pki
from provisioning.cli import main as cs_admin
from provisioning.releases import sign
from testkit.probe import Probe
from tests.conftest import RunningCentral, central_settings, start_central
from tests.support.releases import (
    CRASHES_AT_START,
    ReleaseKey,
    SupervisedKiosk,
    build_release,
    eventually,
    kiosk_env,
    supervised,
)

pytestmark = pytest.mark.slow
BASE = "0.1.0"
# A hang anywhere (kiosks, central, their teardown) fails the test instead of the CI run.
LIMIT_S = 300


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good release 0.2.0 and a release 0.3.0 that exits as soon as it starts."""
    out = tmp_path_factory.mktemp("wheels")
    return {
        "0.2.0": build_release(out, "0.2.0"),
        "0.3.0": build_release(out, "0.3.0", main=CRASHES_AT_START),
    }


@dataclass
class Fleet:
    """Central (HTTPS, trusting one release key), the broker, and where kiosks live."""

    central: RunningCentral
    broker: LocalBroker
    key: ReleaseKey
    root: Path
    ca: Path
    blank: Path

    @property
    def admin(self) -> Any:
        return self.central.admin

    def kiosk(self, kiosk_id: str, frames: list[Path] | None = None) -> SupervisedKiosk:
        env = kiosk_env(
            kiosk_id,
            self.root,
            mqtt_port=self.broker.port,
            frames=frames or [self.blank],
            keys=[self.key.public],
            ca=self.ca,
        )
        return SupervisedKiosk(kiosk_id, self.root, env)

    async def cli(self, *argv: str) -> tuple[int, str]:
        """``cs-admin argv`` against this central; exit code and output."""
        out = io.StringIO()
        token = self.central.settings.data_dir / "admin.token"

        def run() -> int:
            with redirect_stdout(out), redirect_stderr(out):
                return cs_admin(
                    [
                        *("--url", str(self.admin.base_url).rstrip("/")),
                        *("--token-file", str(token), "--ca", str(self.ca)),
                        *argv,
                    ]
                )

        code = await asyncio.to_thread(run)
        return code, out.getvalue()

    async def publish(self, wheel: Path, version: str) -> None:
        data = await asyncio.to_thread(wheel.read_bytes)
        body = {
            "version": version,
            "artifact": base64.b64encode(data).decode(),
            "signature": sign(self.key.private, version, data),
        }
        (await self.admin.post("/releases", json=body)).raise_for_status()

    async def start_rollout(self, version: str, **body: Any) -> int:
        response = await self.admin.post(
            "/rollouts", json={"version": version, "reason": "test", **body}
        )
        response.raise_for_status()
        return int(response.json()["rollout_id"])

    async def rollout(self, rollout_id: int) -> dict[str, Any]:
        response = await self.admin.get(f"/rollouts/{rollout_id}")
        response.raise_for_status()
        return dict(response.json())

    async def progress(self, rollout_id: int) -> dict[str, dict[str, Any]]:
        return {row["kiosk_id"]: row for row in (await self.rollout(rollout_id))["progress"]}

    async def versions(self) -> dict[str, str | None]:
        """Each kiosk's software version while online, None while not."""
        kiosks = (await self.admin.get("/kiosks")).json()
        return {k["kiosk_id"]: k["software_version"] if k["online"] else None for k in kiosks}


@contextlib.asynccontextmanager
async def fleet(tmp_path: Path, broker: LocalBroker, kiosk_ids: list[str]) -> AsyncIterator[Fleet]:
    """Central on HTTPS from a fresh CA, with a shelf, a member and ``kiosk_ids`` enrolled."""
    ca_dir, tls_dir = tmp_path / "ca", tmp_path / "tls"
    pki.init_ca(ca_dir)
    pki.issue_server(ca_dir, tls_dir, ["localhost", "127.0.0.1"])
    key = ReleaseKey()
    settings = central_settings(
        tmp_path,
        broker,
        admin_tls_cert=tls_dir / pki.SERVER_CERT,
        admin_tls_key=tls_dir / pki.SERVER_KEY,
        release_keys=[key.public],
        update_every_s=0.5,
        update_resend_s=2,
    )
    # The address in the server certificate, as a real deployment sets it.
    settings = settings.model_copy(
        update={"public_url": f"https://localhost:{settings.admin_port}"}
    )
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((240, 320), 200, dtype=np.uint8)).save(blank)
    async with start_central(settings, ca=tls_dir / pki.CA_CERT) as central:
        admin = central.admin
        (
            await admin.post("/shelves", json={"shelf_id": "SHELF-A", "name": "Tools"})
        ).raise_for_status()
        member = {"member_id": "M-1001", "name": "Ada"}
        (await admin.post("/members", json=member)).raise_for_status()
        for kiosk_id in kiosk_ids:
            body = {"kiosk_id": kiosk_id, "shelf_id": "SHELF-A"}
            (await admin.post("/kiosks", json=body)).raise_for_status()
        yield Fleet(central, broker, key, tmp_path / "kiosks", tls_dir / pki.CA_CERT, blank)


async def all_online(fleet_: Fleet, kiosk_ids: list[str], version: str = BASE) -> None:
    async def check() -> bool:
        versions = await fleet_.versions()
        return all(versions.get(k) == version for k in kiosk_ids)

    await eventually(check, within=60)


async def test_a_rollout_to_half_of_six_kiosks_updates_exactly_those_and_only_at_idle(
    tmp_path: Path, broker: LocalBroker, wheels: dict[str, Path]
) -> None:
    ids = [f"KIOSK-{n}" for n in range(1, 7)]
    # A fresh database numbers the first rollout 1, so the cohort is known beforehand.
    cohort = releases.cohort(1, ids, percent=50, allow=())
    assert len(cohort) == 3
    busy = sorted(cohort)[0]
    session_s = 40
    async with asyncio.timeout(LIMIT_S), fleet(tmp_path, broker, ids) as f:
        patch = {"session_timeout_s": session_s}
        (await f.admin.patch(f"/kiosks/{busy}/config", json=patch)).raise_for_status()
        code = (await f.admin.post("/members/M-1001/passes", json={})).json()["code"]
        pass_png = tmp_path / "pass.png"
        segno.make_qr(code, error="m").save(str(pass_png), scale=4, border=4)
        probe = Probe(broker.port, client_id="probe-updates")
        probe.subscribe(topics.verdict(busy))
        # Once the busy kiosk is online (5 s of empty shelf at 10 fps), Ada shows her pass,
        # then stays at the shelf.
        walk_up = [f.blank] * 50 + [pass_png] * 3 + [f.blank] * 1000
        frames = {k: [f.blank] for k in ids} | {busy: walk_up}
        async with supervised([f.kiosk(k, frames[k]) for k in ids]):
            await all_online(f, ids)
            # Off the loop: central runs in this process and must answer meanwhile.
            verdict = await asyncio.to_thread(probe.next, 30, topic_suffix="/verdict")
            opened = parse_message(Verdict, verdict.payload)
            assert opened.reason is Reason.SESSION_OPENED
            session_began = time.monotonic()

            code_, out = await f.cli(
                "release", "publish", str(wheels["0.2.0"]), "--key", str(key_file(f, tmp_path))
            )
            assert code_ == 0, out
            code_, out = await f.cli(
                "rollout", "start", "0.2.0", "--percent", "50", "--reason", "pilot"
            )
            assert code_ == 0, out

            idle_cohort = cohort - {busy}

            async def idle_ones_updated() -> bool:
                versions = await f.versions()
                return all(versions[k] == "0.2.0" for k in idle_cohort)

            await eventually(idle_ones_updated, within=90)
            # The member is still mid-session at the busy kiosk: it has not even downloaded.
            assert time.monotonic() - session_began < session_s, "premise: session still open"
            versions = await f.versions()
            assert versions[busy] == BASE
            progress = await f.progress(1)
            assert progress[busy]["state"] == releases.OFFERED

            async def busy_updated() -> bool:
                return (await f.versions())[busy] == "0.2.0"

            await eventually(busy_updated, within=session_s + 90)
            versions = await f.versions()
            assert {k for k, v in versions.items() if v == "0.2.0"} == cohort
            assert {k for k, v in versions.items() if v == BASE} == set(ids) - cohort

            async def done() -> bool:
                return bool((await f.rollout(1))["state"] == "done")

            await eventually(done, within=30)
            progress = await f.progress(1)
            assert set(progress) == cohort  # the others were never offered it
            assert {p["state"] for p in progress.values()} == {"healthy"}
        probe.client.loop_stop()


def key_file(f: Fleet, tmp_path: Path) -> Path:
    """The release key as the admin keeps it: a PEM file, 0600."""
    from cryptography.hazmat.primitives import serialization

    path = tmp_path / "release.key"
    if not path.exists():
        path.write_bytes(
            f.key.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
    return path


async def test_a_release_that_crashes_rolls_back_by_itself_and_halts_the_rollout(
    tmp_path: Path, broker: LocalBroker, wheels: dict[str, Path]
) -> None:
    ids = ["KIOSK-1", "KIOSK-2", "KIOSK-3"]
    async with asyncio.timeout(LIMIT_S), fleet(tmp_path, broker, ids) as f:
        kiosks = {k: f.kiosk(k) for k in ids}
        await f.publish(wheels["0.3.0"], "0.3.0")
        # KIOSK-3 is away while the rollout runs.
        async with supervised([kiosks["KIOSK-1"], kiosks["KIOSK-2"]]):
            await all_online(f, ["KIOSK-1", "KIOSK-2"])
            # Halting only once both have finished: with abort_min 1 the rollout may halt on
            # the first failure before the other kiosk was offered it (correct, but then
            # there is only one rollback to see).
            rollout_id = await f.start_rollout("0.3.0", percent=100, abort_percent=50, abort_min=2)

            async def halted() -> bool:
                return bool((await f.rollout(rollout_id))["state"] == "halted")

            await eventually(halted, within=90)

            async def both_rolled_back() -> bool:
                progress = await f.progress(rollout_id)
                return all(
                    progress.get(k, {}).get("state") == "rolled_back"
                    for k in ("KIOSK-1", "KIOSK-2")
                )

            await eventually(both_rolled_back, within=60)
            progress = await f.progress(rollout_id)
            assert {progress[k]["reason"] for k in ("KIOSK-1", "KIOSK-2")} == {"CRASH_LOOP"}
            await all_online(f, ["KIOSK-1", "KIOSK-2"], BASE)  # back on the version before
            for k in ("KIOSK-1", "KIOSK-2"):
                state = kiosks[k].release_state()
                assert state["current"] is None
                assert state["failed"] == ["0.3.0"]
                assert kiosks[k].starts >= 4  # it really did crash, and was restarted
            rollout = await f.rollout(rollout_id)
            assert "2 of 2 kiosks failed" in rollout["halt_reason"]
            # What admins see per kiosk in `cs-admin kiosks`.
            code, table = await f.cli("kiosks")
            assert code == 0, table
            assert "0.3.0 rolled_back CRASH_LOOP" in table
            # A halted rollout offers nothing more, even to a kiosk coming back.
            async with supervised([kiosks["KIOSK-3"]]):
                await all_online(f, ["KIOSK-3"])
                await asyncio.sleep(3)  # more than the resend interval
                assert "KIOSK-3" not in await f.progress(rollout_id)
                assert (await f.versions())["KIOSK-3"] == BASE
                assert kiosks["KIOSK-3"].release_state() == {}
        audit = (await f.admin.get("/audit", params={"limit": 50})).json()
        actions = [row["action"] for row in audit]
        assert "release.rollout_halted" in actions


async def test_a_tampered_artifact_or_a_wrong_signature_is_refused_and_reported(
    tmp_path: Path, broker: LocalBroker, wheels: dict[str, Path]
) -> None:
    async with asyncio.timeout(LIMIT_S), fleet(tmp_path, broker, ["KIOSK-1"]) as f:
        wheel = wheels["0.2.0"]
        data = wheel.read_bytes()
        rogue = ReleaseKey()
        # Central itself refuses a release its release keys do not verify.
        body = {
            "version": "0.2.0",
            "artifact": base64.b64encode(data).decode(),
            "signature": sign(rogue.private, "0.2.0", data),
        }
        refused = await f.admin.post("/releases", json=body)
        assert refused.status_code == 422
        assert "BAD_SIGNATURE" in refused.text
        await f.publish(wheel, "0.2.0")
        db = f.central.settings.sqlite_file
        # Someone with the database (or the disk, or the path) swaps the artifact.
        tampered = data[:-1] + bytes([data[-1] ^ 1])
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("UPDATE releases SET artifact = ?", (tampered,))
        kiosk = f.kiosk("KIOSK-1")
        async with supervised([kiosk]):
            await all_online(f, ["KIOSK-1"])
            first = await f.start_rollout("0.2.0", kiosks=["KIOSK-1"])

            async def refusal(rollout_id: int) -> Any:
                async def check() -> bool:
                    return (await f.progress(rollout_id)).get("KIOSK-1", {}).get(
                        "state"
                    ) == "refused"

                return check

            await eventually(await refusal(first), within=60)
            assert (await f.progress(first))["KIOSK-1"]["reason"] == "BAD_HASH"
            assert (await f.rollout(first))["state"] == "halted"
            # The right bytes, under a key the kiosk does not trust.
            with contextlib.closing(sqlite3.connect(db)) as conn, conn:
                conn.execute(
                    "UPDATE releases SET artifact = ?, signature = ?",
                    (data, sign(rogue.private, "0.2.0", data)),
                )
            second = await f.start_rollout("0.2.0", kiosks=["KIOSK-1"])
            await eventually(await refusal(second), within=60)
            assert (await f.progress(second))["KIOSK-1"]["reason"] == "BAD_SIGNATURE"
            assert (await f.versions())["KIOSK-1"] == BASE
            assert not (kiosk.state / "releases" / "0.2.0").exists()  # nothing unpacked
            assert hashlib.sha256(data).hexdigest() != hashlib.sha256(tampered).hexdigest()


async def test_a_kiosk_offline_during_the_rollout_catches_up_when_it_returns(
    tmp_path: Path, broker: LocalBroker, wheels: dict[str, Path]
) -> None:
    ids = ["KIOSK-1", "KIOSK-2"]
    async with asyncio.timeout(LIMIT_S), fleet(tmp_path, broker, ids) as f:
        kiosks = {k: f.kiosk(k) for k in ids}
        await f.publish(wheels["0.2.0"], "0.2.0")
        async with supervised([kiosks["KIOSK-1"]]):
            await all_online(f, ["KIOSK-1"])
            rollout_id = await f.start_rollout("0.2.0", kiosks=ids)
            await all_online(f, ["KIOSK-1"], "0.2.0")
            assert (await f.rollout(rollout_id))["state"] == "running"  # KIOSK-2 still to go
            async with supervised([kiosks["KIOSK-2"]]):
                await all_online(f, ["KIOSK-2"], "0.2.0")

                async def done() -> bool:
                    return bool((await f.rollout(rollout_id))["state"] == "done")

                await eventually(done, within=30)
        assert kiosks["KIOSK-2"].release_state()["current"] == "0.2.0"
