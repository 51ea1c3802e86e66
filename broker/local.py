"""Runs a throwaway Mosquitto on loopback for the demo, tests and benchmarks."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from broker import auth, config
from broker.errors import ContractError


def free_port() -> int:
    """A TCP port on loopback nobody is listening on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalBroker:
    """A real ``mosquitto`` process on free ports: the development config, or the fleet
    config (dynamic security accounts, TLS) when given a :class:`config.SecureListener`."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        secure: config.SecureListener | None = None,
        extra_config: str = "",
    ) -> None:
        self.data_dir = data_dir
        # Appended to the config, e.g. the fleet bench's ``max_connections``.
        self.extra_config = extra_config
        self.secure = secure
        if secure is not None:
            # Tests and the demo: both listeners on loopback, on ports nobody holds.
            secure = config.SecureListener(
                auth_dir=secure.auth_dir,
                tls_dir=secure.tls_dir,
                tls_port=free_port(),
                tls_bind="127.0.0.1",
                local_port=port or free_port(),
                client_certs=secure.client_certs,
                pid_file=data_dir / "mosquitto.pid",
                plugin=secure.plugin,
            )
            self.secure = secure
        self.port = (secure.local_port if secure else None) or port or free_port()
        self.tls_port = secure.tls_port if secure else None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> LocalBroker:
        """Start mosquitto and wait until it accepts connections."""
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise ContractError("no_broker", "mosquitto is not installed (apt install mosquitto)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        if self.secure is None:
            conf.write_text(config.development(self.port, self.data_dir) + self.extra_config)
        else:
            seed = self.secure.auth_dir / auth.DYNSEC_FILE
            if not seed.exists():
                # Until someone seeds it: a broker that lets nobody in.
                auth.write_seed(seed, [])
            text = config.secure(self.secure, self.data_dir, run_as_caller=True)
            conf.write_text(text + self.extra_config)
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

    def reload(self) -> None:
        """SIGHUP: re-read the configuration and certificates (not the plugin's accounts)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)

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
