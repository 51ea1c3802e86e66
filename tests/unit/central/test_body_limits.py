"""Every body a route accepts fits the limit the guard applies before it, and no more."""

from __future__ import annotations

from central.api import guard
from central.services.fleet_updates import MAX_ARTIFACT


def test_the_largest_release_a_route_accepts_fits_its_body_limit() -> None:
    # base64 grows by 4/3; the JSON around it (version, signature, notes) by a few KiB.
    largest = MAX_ARTIFACT * 4 // 3 + 4 + 8 * 1024
    assert guard.body_limit_for("/releases") >= largest
    assert guard.body_limit_for("/releases/") >= largest


def test_everything_else_keeps_the_small_limit() -> None:
    for path in ("/enrol/claim", "/releases/1.0/artifact", "/rollouts", "/members"):
        assert guard.body_limit_for(path) == guard.MAX_BODY
    assert guard.body_limit_for("/items/import") == guard.MAX_IMPORT_BODY
