"""Runs a throwaway Mosquitto on loopback for the demo, tests and benchmarks."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from importlib import resources
from pathlib import Path
from types import TracebackType

from broker.errors import ContractError


def free_port() -> int:
    """A TCP port on loopback nobody is listening on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalBroker:
    """A real ``mosquitto`` process with the development config, on a free port."""

    def __init__(self, data_dir: Path, port: int | None = None, extra_config: str = "") -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        # Appended to the development config, e.g. the fleet bench's ``max_connections``.
        self.extra_config = extra_config
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> LocalBroker:
        """Start mosquitto and wait until it accepts connections."""
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise ContractError("no_broker", "mosquitto is not installed (apt install mosquitto)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        template = resources.files("broker.mosquitto").joinpath("dev.conf").read_text()
        conf = self.data_dir / "mosquitto.conf"
        text = template.format(port=self.port, data_dir=self.data_dir)
        conf.write_text(f"{text}{self.extra_config}\n" if self.extra_config else text)
        log = (self.data_dir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our own config, no shell
            [exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ContractError("no_broker", f"mosquitto exited; see {self.data_dir}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise ContractError("no_broker", f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        """Stop mosquitto (it saves its persistence file on a clean stop)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m broker.local``: a development broker in the foreground until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m broker.local", description=__doc__)
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--data-dir", type=Path, default=Path("var/broker"))
    args = parser.parse_args(argv)
    broker = LocalBroker(args.data_dir.resolve(), args.port).start()
    print(f"mosquitto on 127.0.0.1:{broker.port} (Ctrl-C stops)", flush=True)  # noqa: T201
    try:
        assert broker.process is not None
        broker.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
