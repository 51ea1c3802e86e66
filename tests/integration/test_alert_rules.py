"""The Prometheus alert rules in docs/prometheus: their shape, and only metrics central exposes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningCentral

RULES = Path(__file__).resolve().parents[2] / "docs" / "prometheus" / "alerts.yml"
RULE_TESTS = RULES.with_name("alerts_test.yml")
# The seed plan's alerts, and ours for the breaker.
REQUIRED = {
    "CheckoutErrorRateHigh": "critical",
    "ValidationLatencyHigh": "warning",
    "KioskDisconnectsHigh": "warning",
    "SecurityAlert": "critical",
    "CircuitBreakerTripped": "critical",
}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}
# PromQL words that look like metric names to a regex.
_PROMQL = {"sum", "rate", "increase", "max", "or", "and", "by", "le", "vector"}


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    assert isinstance(document["groups"], list)
    found: list[dict[str, Any]] = []
    for group in document["groups"]:
        assert group["name"]
        found += group["rules"]
    return found


def test_every_rule_has_a_severity_and_words_for_the_person_paged() -> None:
    by_name = {}
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        by_name[rule["alert"]] = rule["labels"]["severity"]
    assert by_name == REQUIRED


def names_in(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    return {
        word
        for word in re.findall(r"\b[a-z_][a-z0-9_]*\b", without_labels)
        if word not in _PROMQL and not word.startswith("histogram_")
    }


@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
async def test_every_metric_a_rule_uses_is_one_central_exposes(central: RunningCentral) -> None:
    text = (await central.admin.get("/metrics")).text
    exposed = {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in _SUFFIXES.get(family.type, ("",))
    }
    used = set().union(*(names_in(rule["expr"]) for rule in rules()))
    assert {"qr_scans_total", "qr_breaker_tripped", "qr_kiosk_disconnects_total"} <= used
    assert used - exposed == set()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (.ci/run)")
def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None
    for argv in (["check", "rules", str(RULES)], ["test", "rules", str(RULE_TESTS)]):
        done = subprocess.run([promtool, *argv], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
