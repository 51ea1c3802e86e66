"""Fixtures the integration tests share: ``cs-admin`` against the test central."""

from __future__ import annotations

import pytest

from tests.conftest import RunningCentral
from tests.integration.test_admin_cli import Cli, Outcome, run_cli, token_file_of, url_of


@pytest.fixture
def cli(central: RunningCentral, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cs-admin`` pointed at the test central with its token file."""

    async def run(*argv: str) -> Outcome:
        base = ["--url", url_of(central), "--token-file", str(token_file_of(central))]
        return await run_cli(capsys, [*base, *argv])

    return run
