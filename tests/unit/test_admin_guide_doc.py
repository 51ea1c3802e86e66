"""The README's admin guide: every command in it parses, every step names tests that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from provisioning.cli import parser

REPO = Path(__file__).resolve().parents[2]
START, END = "## Admin guide", "### Health and metrics"
STEP = re.compile(r"^\*\*(\d+)\. ")
NODE = re.compile(r"`(tests/[\w/]+\.py(?:::\w+)?|::\w+)`")


def guide() -> str:
    text = (REPO / "README.md").read_text()
    return text[text.index(START) : text.index(END)]


def steps() -> dict[int, str]:
    """Step number → its text."""
    out: dict[int, str] = {}
    current = None
    for line in guide().splitlines():
        match = STEP.match(line)
        if match:
            current = int(match[1])
            out[current] = ""
        if current is not None:
            out[current] += line + "\n"
    return out


def admin_commands() -> list[list[str]]:
    """Every ``cs-admin …`` invocation in the guide's shell blocks, as argv."""
    commands = []
    in_block = False
    for line in guide().splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        for part in line.split(";"):
            command = part.split(">")[0].replace("$(date +%F)", "DATE")  # drop redirections
            words = shlex.split(command, comments=True)
            if words[:1] == ["cs-admin"]:
                commands.append(words[1:])
    return commands


def test_the_guide_walks_from_broker_to_retirement_in_order() -> None:
    assert sorted(steps()) == list(range(1, len(steps()) + 1))
    assert len(steps()) >= 10


@pytest.mark.parametrize("argv", admin_commands(), ids=lambda argv: " ".join(argv[:3]))
def test_every_command_in_the_guide_is_one_cs_admin_accepts(argv: list[str]) -> None:
    parser().parse_args(argv)  # argparse exits (SystemExit) on anything it does not accept


def test_every_step_names_tests_that_exist() -> None:
    for number, text in steps().items():
        if number == 6:
            continue  # the first checkout is step 5's test, said in words
        nodes = NODE.findall(text)
        assert nodes, f"step {number} names no test"
        path = None
        for node in nodes:
            file, _, name = node.partition("::")
            path = REPO / file if file else path
            assert path is not None, f"step {number}: {node} has no file before it"
            assert path.exists(), f"step {number}: no {path.relative_to(REPO)}"
            if name:
                assert re.search(rf"def {name}\(", path.read_text()), f"step {number}: {node}"
