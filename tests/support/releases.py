"""Fleet-update harness: release wheels built from this checkout, kiosk processes supervised
as systemd supervises them (started through the launcher, restarted whenever they exit)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provisioning.releases import public_text

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("broker", "central", "kiosk", "hardware", "provisioning", "demo")
# A release that cannot even start: the commonest bad release there is.
CRASHES_AT_START = 'raise SystemExit("this release is broken")\n'


def build_release(out: Path, version: str, *, main: str | None = None) -> Path:
    """The kiosk wheel of this checkout as ``version`` (``main`` replaces kiosk/__main__.py)."""
    src = out / f"src-{version}"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in PACKAGES:
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__py*"))
    pyproject = src / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('version = "0.1.0"', f'version = "{version}"', 1)
    )
    if main is not None:
        (src / "kiosk" / "__main__.py").write_text(main)
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
            *("--disable-pip-version-check", "-w", str(out), str(src)),
        ],
        check=True,
        capture_output=True,
    )
    return out / f"communityshare_kiosks-{version}-py3-none-any.whl"


class ReleaseKey:
    """A release key as an admin holds it, and its public half as kiosks trust it."""

    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.public = public_text(self.private)


class SupervisedKiosk:
    """``python -m kiosk.launch`` restarted whenever it exits, like ``Restart=always``."""

    def __init__(self, kiosk_id: str, root: Path, env: dict[str, str]) -> None:
        self.kiosk_id = kiosk_id
        self.state = root / kiosk_id
        self.state.mkdir(parents=True, exist_ok=True)
        self.log = root / f"{kiosk_id}.log"
        self.env = env
        self.starts = 0
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin supervising."""
        self._task = asyncio.create_task(self._supervise(), name=f"supervise-{self.kiosk_id}")

    async def _supervise(self) -> None:
        try:
            while True:
                self.starts += 1
                with self.log.open("ab") as log:
                    self._process = await asyncio.create_subprocess_exec(
                        sys.executable,
                        *("-m", "kiosk.launch"),
                        env=self.env,
                        cwd=self.state,  # never the checkout: it would shadow the release
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                await self._process.wait()
                await asyncio.sleep(0.3)  # RestartSec
        finally:
            await self._terminate()

    async def _terminate(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def stop(self) -> None:
        """Stop supervising and stop the kiosk (SIGTERM), as ``systemctl stop``."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def release_state(self) -> dict[str, object]:
        """The kiosk's ``releases/state.json``, or {} before its first update."""
        path = self.state / "releases" / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}


def kiosk_env(
    kiosk_id: str,
    root: Path,
    *,
    mqtt_port: int,
    frames: list[Path],
    keys: list[str],
    ca: Path,
    fps: float = 10,
) -> dict[str, str]:
    """The environment of one kiosk process under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CS_", "PYTHONPATH"))}
    env |= {
        "CS_KIOSK_KIOSK_ID": kiosk_id,
        "CS_KIOSK_STATE_DIR": str(root / kiosk_id),
        "CS_KIOSK_MQTT_PORT": str(mqtt_port),
        "CS_KIOSK_CAMERA": json.dumps(
            {"type": "replay", "paths": [str(f) for f in frames], "loop": True, "fps": fps}
        ),
        "CS_KIOSK_PINS": json.dumps({"mock": True}),
        "CS_KIOSK_UPDATE_KEYS": json.dumps(keys),
        "CS_KIOSK_UPDATE_CA": str(ca),
        "CS_KIOSK_UPDATE_HEALTH_S": "60",
        "CS_KIOSK_UPDATE_CHECK_EVERY_S": "0.2",
        "CS_KIOSK_STATUS_EVERY_S": "1",
    }
    return env


@contextlib.asynccontextmanager
async def supervised(kiosks: list[SupervisedKiosk]) -> AsyncIterator[list[SupervisedKiosk]]:
    """Start every kiosk; stop them all when the block ends."""
    for kiosk in kiosks:
        kiosk.start()
    try:
        yield kiosks
    finally:
        await asyncio.gather(*(k.stop() for k in kiosks))


async def eventually(check: object, within: float = 60, every: float = 0.3) -> None:
    """Await ``check()`` (an async callable returning bool) until it holds."""
    assert callable(check)
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within} s: {check.__doc__ or check}")
        await asyncio.sleep(every)
