"""The migration scripts central ships: one numbered pair (up and down) per step, per backend."""

from __future__ import annotations

import pytest

from central.storage import migrations

BACKENDS = ("sqlite", "postgres")


def test_both_backends_ship_the_same_steps() -> None:
    steps = {backend: migrations.load(backend) for backend in BACKENDS}
    assert steps["sqlite"], "there is at least the initial schema"
    assert [(m.version, m.name) for m in steps["sqlite"]] == [
        (m.version, m.name) for m in steps["postgres"]
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_step_has_an_up_and_a_down_script(backend: str) -> None:
    for step in migrations.load(backend):
        assert step.up.strip(), f"{backend} {step.version} has an empty up script"
        assert step.down.strip(), f"{backend} {step.version} has an empty down script"
        # Whatever the up script creates, the down script drops (tested for real, up-down-up
        # on both backends, in tests/integration/storage/test_migrations.py).
        assert step.up.count("CREATE TABLE") == step.down.count("DROP TABLE")
