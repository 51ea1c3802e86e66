"""Central as a separate process, started, killed and restarted as systemd would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from central.settings import CentralSettings


def settings_env(settings: CentralSettings) -> dict[str, str]:
    """The ``CS_CENTRAL_*`` environment that reproduces ``settings`` in a child process."""
    env = {
        "CS_CENTRAL_INSTANCE_ID": settings.instance_id,
        "CS_CENTRAL_DATA_DIR": str(settings.data_dir),
        "CS_CENTRAL_DATABASE": settings.database,
        "CS_CENTRAL_MQTT_PORT": str(settings.mqtt_port),
        "CS_CENTRAL_ADMIN_PORT": str(settings.admin_port),
        "CS_CENTRAL_BATCH_MAX": str(settings.batch_max),
        "CS_CENTRAL_RATE_KIOSK_PER_MIN": str(settings.rate_kiosk_per_min),
        "CS_CENTRAL_RATE_MEMBER_PER_MIN": str(settings.rate_member_per_min),
        "CS_CENTRAL_BLOCK_AFTER_FAILURES": str(settings.block_after_failures),
        "CS_CENTRAL_BREAKER_MIN_SCANS": str(settings.breaker_min_scans),
    }
    if settings.broker_control:
        env["CS_CENTRAL_BROKER_CONTROL"] = "1"
    if settings.members_app:
        env["CS_CENTRAL_MEMBERS_APP"] = "1"
        env["CS_CENTRAL_MEMBERS_PORT"] = str(settings.members_port)
        env["CS_CENTRAL_MEMBERS_ORIGIN"] = settings.members_origin
    if settings.postgres_dsn is not None:
        env["CS_CENTRAL_POSTGRES_DSN"] = settings.postgres_dsn.get_secret_value()
    if settings.mqtt_username is not None:
        env["CS_CENTRAL_MQTT_USERNAME"] = settings.mqtt_username
    if settings.mqtt_password is not None:
        env["CS_CENTRAL_MQTT_PASSWORD"] = settings.mqtt_password.get_secret_value()
    return env


class CentralProcess:
    """``python -m central`` with given settings; its log goes to the data dir."""

    def __init__(self, settings: CentralSettings) -> None:
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CentralProcess:
        """Start and wait until the admin API answers."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.settings.data_dir / f"{self.settings.instance_id}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "central"],
            env={**os.environ, **settings_env(self.settings)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        url = f"http://127.0.0.1:{self.settings.admin_port}/health"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"central exited: see {log.name}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("central did not answer in 30 s")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye, as a power cut or the OOM killer would."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM and wait, as systemd stops a unit."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def token(self) -> str:
        """The admin token this instance created."""
        return (self.settings.data_dir / "admin.token").read_text().strip()


def admin_client(central: CentralProcess) -> httpx.Client:
    """A synchronous admin API client for ``central``."""
    return httpx.Client(
        base_url=f"http://127.0.0.1:{central.settings.admin_port}",
        headers={"Authorization": f"Bearer {central.token()}"},
        timeout=10,
    )
