"""CI's throughput gate (bench/gate.py): central on SQLite keeps its speed, pinned commit beside."""

from __future__ import annotations

import pytest

from bench import gate


@pytest.mark.slow
def test_central_on_sqlite_keeps_its_throughput_against_the_pinned_commit() -> None:
    # A regression that costs a fifth of the verdicts a library's kiosks get per second
    # fails here, measured by turns with the pinned code on this same machine.
    outcome = gate.run()
    assert outcome.violations == 0, outcome.describe()
    assert outcome.ratio >= gate.FLOOR, outcome.describe()
