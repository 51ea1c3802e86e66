"""Admin guide, enrolment steps: enrol → bundle → a kiosk from that bundle alone checks out;
zero-touch enrolment by QR; re-enrol rotates; retire locks the kiosk out of the broker."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from broker.bundle import BUNDLE_FILE
from kiosk.enrolment import STATE_FILE
from provisioning import pki
from provisioning.cli import main as cs_admin
from testkit.secure_broker import connect
from tests.conftest import seed_library
from tests.support.fleet import SecureFleet, code_images, kiosk_from_bundle, secure_fleet

pytestmark = pytest.mark.slow
NOT_AUTHORISED = 135


async def admin(fleet: SecureFleet, *argv: str) -> tuple[int, str, str]:
    """Run ``cs-admin argv`` against the fleet's central; exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()

    def run() -> int:
        with redirect_stdout(out), redirect_stderr(err):
            return cs_admin(
                [
                    *("--url", fleet.url, "--token-file", str(fleet.token_file)),
                    *("--ca", str(fleet.tls_dir / pki.CA_CERT)),
                    *argv,
                ]
            )

    code = await asyncio.to_thread(run)
    return code, out.getvalue(), err.getvalue()


def _text(log: Path) -> str:
    return log.read_text() if log.exists() else ""


async def wait_for_text(log: Path, text: str, within: float) -> None:
    deadline = time.monotonic() + within
    while text not in _text(log):
        assert time.monotonic() < deadline, f"{text!r} not in {log.name}:\n{_text(log)}"
        await asyncio.sleep(0.2)


@contextlib.contextmanager
def stopping(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def broker_login(fleet: SecureFleet, kiosk_id: str, password: str) -> int:
    client, rc = connect(
        fleet.broker.tls_port or 0, kiosk_id, password, ca=fleet.tls_dir / pki.CA_CERT
    )
    client.close()
    return int(rc.value)


async def walkup_frames(fleet: SecureFleet, root: Path) -> list[Path]:
    """Three seconds of nothing, Ada's pass, a pause, the drill's label, then nothing."""
    admin_api = fleet.central.admin
    pass_code = (await admin_api.post("/members/M-1001/passes", json={})).json()["code"]
    drill = (await admin_api.get("/items/DRILL-01/label")).json()["code"]
    images = code_images(root, {"pass": pass_code, "drill": drill})
    blank = images["blank"]
    return (
        [blank] * 90 + [images["pass"]] * 15 + [blank] * 45 + [images["drill"]] * 15 + [blank] * 900
    )


async def test_a_kiosk_started_from_its_bundle_alone_checks_out_and_retiring_it_locks_it_out(
    tmp_path: Path,
) -> None:
    async with secure_fleet(tmp_path) as fleet:
        await seed_library(fleet.central.admin)
        bundle_dir = tmp_path / "sd-card" / "communityshare"
        code, out, _ = await admin(
            fleet, "kiosk", "enrol", "KIOSK-C1", "--shelf", "SHELF-A", "--out", str(bundle_dir)
        )
        assert code == 0
        bundle = json.loads((bundle_dir / BUNDLE_FILE).read_text())
        assert (bundle_dir / BUNDLE_FILE).stat().st_mode & 0o777 == 0o600
        assert bundle["mqtt_password"] not in out  # the file is the one place it is written
        assert "KIOSK-C1" in out

        frames = await walkup_frames(fleet, tmp_path / "frames")
        state, log = tmp_path / "kiosk-state", tmp_path / "kiosk.log"
        with stopping(kiosk_from_bundle(state, bundle_dir, frames, log)):
            await wait_for_text(log, "config shelf SHELF-A", within=30)
            await wait_for_text(log, "verdict CHECKED_OUT", within=30)
            # The secret left the SD card's boot partition for a private state file.
            assert not (bundle_dir / BUNDLE_FILE).exists()
            assert (state / STATE_FILE).stat().st_mode & 0o777 == 0o600
            items = {i["item_id"]: i for i in (await fleet.central.admin.get("/items")).json()}
            assert items["DRILL-01"]["state"] == "checked_out"

            code, out, _ = await admin(fleet, "kiosk", "retire", "KIOSK-C1", "--reason", "stolen")
            assert code == 0
            await wait_for_text(log, "offline", within=15)
            assert broker_login(fleet, "KIOSK-C1", bundle["mqtt_password"]) == NOT_AUTHORISED
        audit = (await fleet.central.admin.get("/audit", params={"limit": 500})).json()
        assert {"kiosk.enrol", "kiosk.retire"} <= {row["action"] for row in audit}
        # Its history stays: the checkout it made is still on record.
        assert any(r["reason"] == "CHECKED_OUT" and r["kiosk_id"] == "KIOSK-C1" for r in audit)


async def test_re_enrolling_rotates_the_password_and_duplicates_are_refused(
    tmp_path: Path,
) -> None:
    async with secure_fleet(tmp_path) as fleet:
        await seed_library(fleet.central.admin)
        first, second = tmp_path / "first", tmp_path / "second.tar.gz"
        argv = ("kiosk", "enrol", "KIOSK-C1", "--shelf", "SHELF-A", "--out")
        assert (await admin(fleet, *argv, str(first)))[0] == 0
        old = json.loads((first / BUNDLE_FILE).read_text())["mqtt_password"]
        assert broker_login(fleet, "KIOSK-C1", old) == 0

        code, _, err = await admin(fleet, *argv, str(tmp_path / "again"))
        assert code == 1
        assert "already enrolled" in err

        assert (await admin(fleet, *argv, str(second), "--rotate"))[0] == 0
        import tarfile

        with tarfile.open(second) as archive:
            member = archive.extractfile(f"communityshare/{BUNDLE_FILE}")
            assert member is not None
            new = json.loads(member.read())["mqtt_password"]
        assert new != old
        assert broker_login(fleet, "KIOSK-C1", old) == NOT_AUTHORISED
        assert broker_login(fleet, "KIOSK-C1", new) == 0

        code, _, err = await admin(fleet, "kiosk", "retire", "KIOSK-NOPE", "--reason", "x")
        assert code == 1
        assert "no kiosk KIOSK-NOPE" in err


async def test_zero_touch_a_fresh_kiosk_claims_its_identity_from_an_enrolment_qr(
    tmp_path: Path,
) -> None:
    async with secure_fleet(tmp_path, https=True) as fleet:
        await seed_library(fleet.central.admin)
        code, out, _ = await admin(
            fleet, "--json", "kiosk", "enrol-code", "KIOSK-Z1", "--shelf", "SHELF-A"
        )
        assert code == 0
        enrol_code = json.loads(out)["code"]
        images = code_images(tmp_path / "enrol", {"enrol": enrol_code})
        walkup = await walkup_frames(fleet, tmp_path / "frames")
        frames = [images["blank"]] * 30 + [images["enrol"]] * 10 + walkup
        claim_env = {
            "CS_KIOSK_CLAIM_URL": fleet.url,
            "CS_KIOSK_CLAIM_CA": str(fleet.tls_dir / pki.CA_CERT),
        }
        state, log = tmp_path / "fresh-kiosk", tmp_path / "fresh.log"
        with stopping(kiosk_from_bundle(state, None, frames, log, **claim_env)):
            await wait_for_text(log, "enrolled as KIOSK-Z1 by QR", within=30)
            await wait_for_text(log, "verdict CHECKED_OUT", within=40)
        assert (state / STATE_FILE).stat().st_mode & 0o777 == 0o600

        # The same QR shown to a second fresh kiosk: refused, audited, nothing enrolled.
        state2, log2 = tmp_path / "second-kiosk", tmp_path / "second.log"
        with stopping(kiosk_from_bundle(state2, None, frames, log2, **claim_env)):
            await wait_for_text(log2, "enrolment code refused: ALREADY_USED", within=30)
        assert not (state2 / STATE_FILE).exists()
        audit = (await fleet.central.admin.get("/audit", params={"limit": 500})).json()
        claims = [r["reason"] for r in audit if r["action"] == "kiosk.claim"]
        assert sorted(claims) == ["ALREADY_USED", "ENROLLED"]
