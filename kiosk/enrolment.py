"""A kiosk's identity: from a first-boot bundle on the SD card, or claimed by enrolment QR.

Either way the result is the same file, ``<state_dir>/enrolment.json`` (0600), and the
kiosk starts as that enrolled kiosk from then on.
"""

from __future__ import annotations

import logging
import os
import ssl
import sys
from pathlib import Path

import httpx
from pydantic import ValidationError

from broker.bundle import BUNDLE_FILE, EnrolmentBundle
from broker.codes import CodeKind, classify_code
from hardware.interfaces import Rgb
from kiosk.clock import Clock, SystemClock
from kiosk.parts import Devices
from kiosk.scans import ScanSource
from kiosk.settings import UNENROLLED, KioskSettings

log = logging.getLogger(__name__)

STATE_FILE = "enrolment.json"
CA_FILE = "broker-ca.pem"
WAITING = Rgb(blue=True)  # steady blue: "show me an enrolment code"
ENROLLED, REFUSED, DARK = Rgb(green=True), Rgb(red=True), Rgb()


class EnrolmentError(RuntimeError):
    """The kiosk has no identity and no way to get one, or its bundle is unreadable."""


class ClaimRefusedError(Exception):
    """Central said no to an enrolment code (reused, expired, forged)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def save(bundle: EnrolmentBundle, state_dir: Path) -> None:
    """Keep the bundle in the state directory, readable by the kiosk's user only."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    state_dir.chmod(0o700)
    _write_private(state_dir / STATE_FILE, bundle.model_dump_json())
    if bundle.ca_pem:
        (state_dir / CA_FILE).write_text(bundle.ca_pem)


def load(state_dir: Path) -> EnrolmentBundle | None:
    """The kiosk's saved enrolment, if it has one."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        return EnrolmentBundle.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise EnrolmentError(f"{path} is not a valid enrolment: {exc}") from exc


def install_bundle(bundle_dir: Path, state_dir: Path) -> EnrolmentBundle | None:
    """Move a first-boot bundle into the state directory and off the SD card's boot partition."""
    source = bundle_dir / BUNDLE_FILE
    if not source.exists():
        return None
    try:
        bundle = EnrolmentBundle.model_validate_json(source.read_text())
    except ValidationError as exc:
        raise EnrolmentError(f"{source} is not a valid bundle: {exc}") from exc
    save(bundle, state_dir)
    # The boot partition is FAT, readable by anyone holding the card: leave no password.
    source.unlink()
    log.info("enrolled as %s from %s", bundle.kiosk_id, bundle_dir)
    return bundle


def apply(settings: KioskSettings, bundle: EnrolmentBundle, state_dir: Path) -> KioskSettings:
    """The settings with the enrolment's identity, broker and credentials."""
    return settings.model_copy(
        update={
            "kiosk_id": bundle.kiosk_id,
            "mqtt_host": bundle.mqtt_host,
            "mqtt_port": bundle.mqtt_port,
            "mqtt_username": bundle.kiosk_id,
            "mqtt_password": bundle.mqtt_password,
            "mqtt_tls_ca": state_dir / CA_FILE if bundle.ca_pem else None,
            "session_timeout_s": bundle.config.session_timeout_s,
        }
    )


async def claim(url: str, code: str, ca: Path | None) -> EnrolmentBundle:
    """Trade an enrolment code for this kiosk's bundle over HTTPS."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if ca else True
    async with httpx.AsyncClient(base_url=url, verify=verify, timeout=10) as client:
        response = await client.post("/enrol/claim", json={"code": code})
    if response.status_code == httpx.codes.FORBIDDEN:
        detail = response.json().get("detail", {})
        raise ClaimRefusedError(str(detail.get("reason", "REFUSED")))
    response.raise_for_status()
    return EnrolmentBundle.model_validate(response.json())


async def wait_for_claim(
    settings: KioskSettings, devices: Devices, clock: Clock | None = None
) -> EnrolmentBundle:
    """Scan until an enrolment QR is shown and central accepts it."""
    if not settings.claim_url:
        raise EnrolmentError(
            "this kiosk is not enrolled: copy a bundle to its bundle_dir, or set claim_url"
            " and show it an enrolment QR"
        )
    clock = clock or SystemClock()
    # The same scan source as the kiosk's: decodes off the event loop, reopens a stalled
    # camera, skips a frame the decoder cannot read, and yields each code once per showing.
    scans = ScanSource(
        devices.camera,
        devices.decoder,
        clock,
        frame_timeout_s=settings.frame_timeout_s,
        debounce_s=settings.debounce_s,
    )
    await scans.start()
    tried: dict[str, float] = {}
    devices.lights.set(WAITING)
    try:
        async for code in scans:
            # Shown again at once, a refused code is not tried again within 10 s.
            if classify_code(code) is not CodeKind.ENROL or clock.monotonic() < tried.get(
                code, 0.0
            ):
                continue
            tried[code] = clock.monotonic() + 10.0
            try:
                bundle = await claim(settings.claim_url, code, settings.claim_ca)
            except ClaimRefusedError as refused:
                log.warning("enrolment code refused: %s", refused.reason)
                await _show(devices, REFUSED, 1.0, clock)
                continue
            except httpx.HTTPError as exc:
                log.warning("central unreachable for enrolment: %s", exc)
                await _show(devices, REFUSED, 1.0, clock)
                continue
            await _show(devices, ENROLLED, 1.0, clock, then=DARK)
            return bundle
    finally:
        await scans.stop()
    raise AssertionError("the scan source never ends")  # pragma: no cover


async def _show(
    devices: Devices, colour: Rgb, seconds: float, clock: Clock, then: Rgb = WAITING
) -> None:
    devices.lights.set(colour)
    await clock.sleep(seconds)
    devices.lights.set(then)


async def prepare(settings: KioskSettings, devices: Devices) -> KioskSettings:
    """The settings this kiosk runs with: its enrolment applied, claiming one if it must."""
    state_dir = Path(settings.state_dir)
    if settings.bundle_dir is not None:
        install_bundle(settings.bundle_dir, state_dir)
    bundle = load(state_dir)
    if bundle is None and settings.kiosk_id == UNENROLLED:
        bundle = await wait_for_claim(settings, devices)
        save(bundle, state_dir)
        log.info("enrolled as %s by QR", bundle.kiosk_id)
    return settings if bundle is None else apply(settings, bundle, state_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m kiosk.enrolment``: move a first-boot bundle into the state directory.

    systemd runs this as root before the kiosk starts (the boot partition is root's),
    then hands the files to the kiosk's own user.
    """
    import argparse
    import shutil

    parser = argparse.ArgumentParser(prog="python -m kiosk.enrolment", description=main.__doc__)
    parser.add_argument("--bundle-dir", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--owner", help="user to own the state files")
    args = parser.parse_args(argv)
    try:
        bundle = install_bundle(args.bundle_dir, args.state_dir)
    except EnrolmentError as exc:
        print(f"bundle not installed: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    if bundle is not None and args.owner:
        for path in (args.state_dir, *args.state_dir.iterdir()):
            shutil.chown(path, args.owner, args.owner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
