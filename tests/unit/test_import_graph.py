"""The import graph read from the source: no cycle in any package, only allowed directions."""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("broker", "central", "kiosk", "hardware", "provisioning", "testkit", "bench", "tests")

# product.md's import direction, plus the shared harness: what each top-level package may import
# of ours. testkit is what bench/ and tests/ share, so neither has to import the other's harness;
# tests may import bench/ only to run a benchmark as code under test.
ALLOWED: dict[str, frozenset[str]] = {
    "hardware": frozenset(),
    "broker": frozenset(),
    "kiosk": frozenset({"hardware", "broker"}),
    "central": frozenset({"broker"}),
    "provisioning": frozenset({"broker"}),
    "testkit": frozenset({"broker", "central", "kiosk", "hardware", "provisioning"}),
    "bench": frozenset({"broker", "central", "kiosk", "hardware", "provisioning", "testkit"}),
    "tests": frozenset(
        {"broker", "central", "kiosk", "hardware", "provisioning", "testkit", "bench"}
    ),
}


# Edges left out of the cycle check while the change that owns them is under way; the last
# test below fails as soon as one is gone, so the list only shrinks (empty: the check is whole).
PENDING: frozenset[tuple[str, str]] = frozenset()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _imported(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """Each module of ours this file imports: the most specific module an import statement names.

    Every import counts, `if TYPE_CHECKING:` ones and those inside functions included: an import
    moved there to hide a cycle still ties the two modules together.
    """
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            # `from a import b` names module a.b when b is a module, else something inside a
            targets = [
                f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin
                for alias in node.names
            ]
        for named in targets:
            target = named
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def import_graph() -> dict[str, set[str]]:
    """Each module of the project and the modules of ours it imports."""
    paths = {_module_name(path): path for path in _sources()}
    known = set(paths)
    return {name: set(_imported(name, path, known)) for name, path in paths.items()}


GRAPH = import_graph()
EDGES = [(importer, imported) for importer, targets in GRAPH.items() for imported in targets]


def _top(module: str) -> str:
    return module.partition(".")[0]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_has_an_import_cycle(package: str) -> None:
    inside = {
        module: {
            target
            for target in targets
            if _top(target) == package and (module, target) not in PENDING
        }
        for module, targets in GRAPH.items()
        if _top(module) == package
    }
    try:
        graphlib.TopologicalSorter(inside).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle in {package}/: {' -> '.join(error.args[1])}")


def test_packages_import_only_in_the_allowed_direction() -> None:
    wrong = sorted(
        f"{importer} -> {imported}"
        for importer, imported in EDGES
        if _top(importer) != _top(imported) and _top(imported) not in ALLOWED[_top(importer)]
    )
    assert wrong == []


def test_the_graph_sees_the_imports_it_checks() -> None:
    # A parser that found nothing would pass every test above; these edges exist on purpose.
    crossings = {(_top(importer), _top(imported)) for importer, imported in EDGES}
    assert {("kiosk", "hardware"), ("central", "broker"), ("bench", "testkit")} <= crossings


def test_every_pending_edge_still_exists() -> None:
    # Once the owning change removes one, its entry must go too: the check is whole again.
    assert set(EDGES) >= PENDING
