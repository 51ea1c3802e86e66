"""One fleet scenario's record: its settings and what happened, shared by the run and its report."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Run:
    """One scenario's settings and what happened in it."""

    args: argparse.Namespace
    started: float = 0.0
    timeline: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
