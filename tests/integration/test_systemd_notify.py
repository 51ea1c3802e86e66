"""The systemd notify protocol: READY when really ready, watchdog pings only while working."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.local import LocalBroker
from tests.conftest import central_settings, start_central
from tests.support.kiosks import running_kiosk


class NotifySocket:
    """What systemd listens on: a datagram socket named by $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.seen: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.seen.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.seen

    async def until(self, message: str, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while message not in self.drain():
            if time.monotonic() > deadline:
                raise AssertionError(f"{message} never sent; got {self.seen}")
            await asyncio.sleep(0.05)


@pytest.fixture
def notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    path = tmp_path / "notify.sock"
    listener = NotifySocket(path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield listener
    listener.sock.close()


async def test_central_says_ready_feeds_the_watchdog_and_says_stopping(
    notify: NotifySocket, tmp_path: Path, broker: LocalBroker
) -> None:
    async with start_central(central_settings(tmp_path, broker)):
        await notify.until("READY=1")
        await notify.until("WATCHDOG=1", within=5)
    await notify.until("STOPPING=1")


async def test_kiosk_pings_from_its_scan_loop_and_stops_when_frames_stop(
    notify: NotifySocket, tmp_path: Path, broker: LocalBroker
) -> None:
    async with running_kiosk("KIOSK-A1", broker, tmp_path / "k", frame_timeout_s=0.5) as k:
        await notify.until("READY=1")
        await notify.until("WATCHDOG=1", within=5)
        # A camera that stops delivering frames: the scan loop no longer completes a
        # read, so it no longer feeds the watchdog and systemd will restart the kiosk.
        k.camera.stall()
        await asyncio.sleep(1.5)
        notify.seen.clear()
        notify.drain()
        await asyncio.sleep(2.5)
        assert "WATCHDOG=1" not in notify.drain()
        k.camera.resume()
        await notify.until("WATCHDOG=1", within=5)
    await notify.until("STOPPING=1")
