"""The kiosk service entry point: ``run(settings, deps)`` and the ``cs-kiosk`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from kiosk import enrolment, logs
from kiosk.core import Deps, open_kiosk
from kiosk.settings import KioskSettings, load_settings


async def run(settings: KioskSettings, deps: Deps) -> None:
    """Run one kiosk until cancelled; cleanup (LEDs off, outbox closed) in ``finally``."""
    settings = await enrolment.prepare(settings, deps.devices)
    kiosk = await open_kiosk(settings, deps)
    try:
        await kiosk.run()
    finally:
        await kiosk.outbox.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``cs-kiosk``: run the kiosk, or check its configuration."""
    parser = argparse.ArgumentParser(prog="cs-kiosk", description=__doc__)
    parser.add_argument(
        "--validate-config", action="store_true", help="load and check the settings, then exit"
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logs.setup(args.log_level)
    try:
        settings = load_settings()
    except ValidationError as exc:
        print(f"invalid kiosk configuration:\n{exc}", file=sys.stderr)  # noqa: T201
        return 2
    if args.validate_config:
        print(settings.model_dump_json(indent=2))  # noqa: T201 - secrets print masked
        return 0
    from kiosk.devices import DeviceMaker, build_devices

    maker = DeviceMaker(settings)
    deps = Deps(devices=build_devices(settings, maker), rebuild=maker)

    async def runner() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await run(settings, deps)

    asyncio.run(runner())
    return 0


if __name__ == "__main__":
    sys.exit(main())
