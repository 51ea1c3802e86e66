"""Signing keys: constant-time MAC checks, rotation with a grace period, the ring on disk."""

from __future__ import annotations

import base64
import hmac
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.messages import Reason
from central import tokens
from central.errors import ConfigError
from central.keys import KeyFile, load_key_ring, rotate_key_ring
from central.tokens import Label, Pass, TokenSigner

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


class Ticker:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_mac_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = TokenSigner(load_key_ring_for_test())
    label = signer.label("DRILL-01", 1)
    seen: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    # The MAC check must go through hmac.compare_digest: an == on strings returns at the
    # first differing character, and the time it takes tells a forger how much was right.
    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert signer.verify(label, NOW) == Label("DRILL-01", 1)
    forged = label[:-1] + ("A" if label[-1] != "A" else "B")
    assert signer.verify(forged, NOW) is Reason.BAD_SIGNATURE
    mac = label.rpartition(".")[2]
    assert seen == [(mac, mac), (mac, forged.rpartition(".")[2])]


def load_key_ring_for_test() -> tokens.KeyRing:
    return tokens.KeyRing({"K1": bytes(range(32))}, "K1")


def test_a_new_ring_is_private_and_rotation_keeps_it_private(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    load_key_ring(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rotation = rotate_key_ring(path, NOW, DAY)
    assert (rotation.active, rotation.previous) == ("K2", "K1")
    assert rotation.previous_valid_until == NOW + DAY
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".keys.json.*"))  # no temporary file left behind


def test_codes_under_the_old_key_verify_for_the_grace_period_then_are_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.json"
    keys = KeyFile(path, create=True, grace=timedelta(hours=6))
    signer = TokenSigner(keys)
    old_label = signer.label("DRILL-01", 3)
    old_pass = signer.member_pass("P1", "M-1", NOW + timedelta(days=2))
    keys.rotate(NOW)
    new_label = signer.label("DRILL-01", 3)
    assert new_label.split(".")[2] == "K2"
    assert old_label.split(".")[2] == "K1"

    in_grace = NOW + timedelta(hours=5, minutes=59)
    assert signer.verify(old_label, in_grace) == Label("DRILL-01", 3)
    assert isinstance(signer.verify(old_pass, in_grace), Pass)
    after = NOW + timedelta(hours=6)
    assert signer.verify(old_label, after) is Reason.BAD_SIGNATURE
    assert signer.verify(old_pass, after) is Reason.BAD_SIGNATURE
    assert signer.verify(new_label, after + timedelta(days=365)) == Label("DRILL-01", 3)


def test_a_rotation_by_one_instance_reaches_another_sharing_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ticker = Ticker()
    one = KeyFile(path, create=True, grace=timedelta(0), monotonic=ticker)
    two = KeyFile(path, create=False, grace=timedelta(0), monotonic=ticker)
    signer_two = TokenSigner(two)
    old = signer_two.label("SAW-01", 1)
    one.rotate(NOW)
    new = TokenSigner(one).label("SAW-01", 1)
    # Checked at most once a second: until then instance two signs and verifies as before.
    assert signer_two.verify(new, NOW) is Reason.BAD_SIGNATURE
    ticker.t += 1.0
    assert signer_two.verify(new, NOW) == Label("SAW-01", 1)
    assert signer_two.verify(old, NOW) is Reason.BAD_SIGNATURE  # grace 0
    assert signer_two.label("SAW-01", 1) == new


def test_keys_past_their_grace_leave_the_file_at_the_next_rotation(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    load_key_ring(path, create=True)
    rotate_key_ring(path, NOW, DAY)
    rotate_key_ring(path, NOW + timedelta(hours=1), DAY)
    assert sorted(json.loads(path.read_text())["keys"]) == ["K1", "K2", "K3"]
    rotate_key_ring(path, NOW + timedelta(days=2), DAY)
    data = json.loads(path.read_text())
    assert sorted(data["keys"]) == ["K3", "K4"]
    assert data["active"] == "K4"
    assert sorted(data["retired"]) == ["K3"]


def test_describe_names_keys_and_never_shows_key_material(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys = KeyFile(path, create=True, grace=DAY)
    keys.rotate(NOW)
    rows = keys.describe()
    assert [(r["key_id"], r["active"], r["valid_until"]) for r in rows] == [
        ("K1", False, NOW + DAY),
        ("K2", True, None),
    ]
    material = json.loads(path.read_text())["keys"].values()
    text = json.dumps(rows, default=str)
    for secret in material:
        assert secret not in text
        assert base64.b64decode(secret).hex() not in text


def test_an_unreadable_ring_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        load_key_ring(path, create=False)
    path.write_text('{"active": "K9", "keys": {}}')
    with pytest.raises(ConfigError):
        rotate_key_ring(path, NOW, DAY)
