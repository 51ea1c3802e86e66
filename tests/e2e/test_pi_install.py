"""The README's Pi install on what CI has: Debian's own python3 and python3-numpy, a venv made
with ``--system-site-packages``, the kiosk's lock only; the system numpy stays, the kiosk runs.

On Raspberry Pi OS picamera2 and simplejpeg are built against the apt numpy; a venv that
shadows it breaks the camera ("numpy.dtype size changed"). Debian bookworm's python3-numpy
(1.24) stands in for Raspberry Pi OS's here: the same release, the same package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import segno

from broker import topics
from broker.local import LocalBroker
from broker.messages import CodeScan, parse_event
from testkit.probe import Probe

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
# What a kiosk never runs; the dev lock has them all, the kiosk's must not.
NOT_ON_A_KIOSK = ("numpy", "PIL", "fastapi", "uvicorn", "asyncpg", "matplotlib", "mypy", "py_spy")
LABEL = "CS1.L.K1.DRILL-1.1.ABCDEFGHIJKLMNOPQRSTUVWX"


def system_numpy() -> tuple[str, str] | None:
    """(version, file) of the numpy Debian's python3 imports, or None without one."""
    if not SYSTEM_PYTHON.exists():
        return None
    result = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import numpy, PIL; print(numpy.__version__, numpy.__file__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    version, file = result.stdout.split()
    return version, file


@pytest.fixture(scope="module")
def pi_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kiosk venv built exactly as the README's Pi section builds it."""
    if system_numpy() is None:
        pytest.skip("needs Debian's python3 with python3-numpy and python3-pil (scripts/setup.sh)")
    root = tmp_path_factory.mktemp("pi")
    venv = root / "venv"
    subprocess.run(
        [str(SYSTEM_PYTHON), "-m", "venv", "--system-site-packages", str(venv)], check=True
    )
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "--require-hashes", "-r", str(REPO / "requirements" / "kiosk.lock")], check=True
    )
    # Built from a copy so the checkout gains no build/ or egg-info from this test.
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in ("broker", "central", "kiosk", "hardware", "provisioning", "demo"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__py*"))
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", str(source)], check=True)
    return venv


def venv_run(venv: Path, code: str) -> str:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_the_kiosk_lock_leaves_the_system_numpy_in_place(pi_venv: Path) -> None:
    system = system_numpy()
    assert system is not None
    version, file = venv_run(
        pi_venv, "import numpy; print(numpy.__version__, numpy.__file__)"
    ).split()
    assert (version, file) == system
    assert file.startswith("/usr/lib/python3/dist-packages/")
    site = next((pi_venv / "lib").glob("python3.*/site-packages"))
    installed = {path.name for path in site.iterdir()}
    assert not installed & set(NOT_ON_A_KIOSK), sorted(installed & set(NOT_ON_A_KIOSK))


def test_the_kiosk_from_the_pi_venv_validates_and_publishes_a_scan(
    pi_venv: Path, broker: LocalBroker, tmp_path: Path
) -> None:
    frame = tmp_path / "label.png"
    segno.make_qr(LABEL, error="m").save(str(frame), scale=5, border=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CS_", "VIRTUAL_ENV"))}
    env |= {
        "CS_KIOSK_KIOSK_ID": "KIOSK-PI",
        "CS_KIOSK_MQTT_PORT": str(broker.port),
        "CS_KIOSK_STATE_DIR": str(tmp_path / "state"),
        "CS_KIOSK_CAMERA": json.dumps({"type": "replay", "paths": [str(frame)], "loop": True}),
        "CS_KIOSK_PINS": json.dumps({"mock": True}),
    }
    cs_kiosk = str(pi_venv / "bin" / "cs-kiosk")
    checked = subprocess.run(
        [cs_kiosk, "--validate-config"], env=env, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["kiosk_id"] == "KIOSK-PI"

    probe = Probe(broker.port)
    probe.subscribe(topics.scan("KIOSK-PI"))
    log = (tmp_path / "kiosk.log").open("wb")
    kiosk = subprocess.Popen([cs_kiosk], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        scan = parse_event("KIOSK-PI", probe.next(30, topic_suffix="/scan").payload)
    finally:
        kiosk.terminate()
        kiosk.wait(timeout=15)
        probe.client.loop_stop()
    assert isinstance(scan, CodeScan)
    assert scan.code == LABEL
    assert scan.kiosk_id == "KIOSK-PI"
