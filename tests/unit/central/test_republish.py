"""After a reconnect central republishes only the retained state the broker may lack."""

from __future__ import annotations

import re
from importlib import resources

from central.republish import BROKER_AUTOSAVE_S, after_connect

CONFIG, DRILL = "cs/v1/kiosk/K1/config", "cs/v1/shelf/S/item/DRILL/availability"


def test_a_broker_that_kept_our_session_gets_only_what_it_may_not_have_saved() -> None:
    # Configs published an hour before the drop are in the broker's save; a change
    # published a second before it may not be (autosave every 5 s).
    scope = after_connect(
        first=False,
        session_present=True,
        published={CONFIG: 0.0, DRILL: 3599.0},
        down_since=3600.0,
        keepalive_s=5,
    )
    assert not scope.everything
    assert scope.topics == {DRILL}
    assert not scope.covers(CONFIG)


def test_what_was_published_while_the_broker_was_away_is_published_again() -> None:
    scope = after_connect(
        first=False,
        session_present=True,
        published={CONFIG: 0.0, DRILL: 3700.0},
        down_since=3600.0,
        keepalive_s=5,
    )
    assert scope.covers(DRILL)
    assert not scope.covers(CONFIG)


def test_a_broker_without_our_session_or_a_fresh_central_gets_everything() -> None:
    published = {CONFIG: 0.0}
    lost = after_connect(
        first=False, session_present=False, published=published, down_since=3600.0, keepalive_s=5
    )
    fresh = after_connect(
        first=True, session_present=True, published=published, down_since=None, keepalive_s=5
    )
    assert lost.everything
    assert lost.covers(CONFIG)
    assert fresh.everything
    assert fresh.covers(CONFIG)


def test_a_quiet_reconnect_to_a_broker_with_our_session_republishes_nothing() -> None:
    scope = after_connect(
        first=False,
        session_present=True,
        published={CONFIG: 0.0},
        down_since=3600.0,
        keepalive_s=5,
    )
    assert scope.nothing


def test_every_shipped_broker_configuration_saves_at_least_as_often_as_assumed() -> None:
    # The window above trusts the broker to save this often; a config saving less often
    # would lose retained changes the window no longer covers.
    folder = resources.files("broker.mosquitto")
    confs = [f for f in folder.iterdir() if f.name.endswith(".conf")]
    assert confs
    for conf in confs:
        text = conf.read_text()
        if re.search(r"^persistence true", text, re.MULTILINE):
            found = re.search(r"^autosave_interval (\d+)", text, re.MULTILINE)
            assert found, conf.name
            assert int(found.group(1)) <= BROKER_AUTOSAVE_S, conf.name
            assert not re.search(r"^autosave_on_changes true", text, re.MULTILINE), conf.name
