"""Every body a route accepts fits the limit the guard applies before it, and no more."""

from __future__ import annotations

from central import api_guard, api_releases


def test_the_largest_release_a_route_accepts_fits_its_body_limit() -> None:
    # base64 grows by 4/3; the JSON around it (version, signature, notes) by a few KiB.
    largest = api_releases._MAX_ARTIFACT * 4 // 3 + 4 + 8 * 1024
    assert api_guard.body_limit_for("/releases") >= largest
    assert api_guard.body_limit_for("/releases/") >= largest


def test_everything_else_keeps_the_small_limit() -> None:
    for path in ("/enrol/claim", "/releases/1.0/artifact", "/rollouts", "/members"):
        assert api_guard.body_limit_for(path) == api_guard.MAX_BODY
    assert api_guard.body_limit_for("/items/import") == api_guard.MAX_IMPORT_BODY
