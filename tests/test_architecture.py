"""docs/architecture.md's module table matches the tree, and lib/ and sandbox/ have no import cycles."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TABLE_ROW = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)


def table_paths() -> list[str]:
    """The first column of docs/architecture.md's table: files, or folders ending in '/'."""
    return TABLE_ROW.findall((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))


def lib_modules() -> list[str]:
    """Every module under lib/ that the table must name: package `__init__` files and released migration
    revisions (lib/migrations/versions/) are left out."""
    return sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "lib").rglob("*.py")
        if path.name != "__init__.py" and "versions" not in path.relative_to(ROOT / "lib").parts
    )


def test_the_table_names_something() -> None:
    assert len(table_paths()) > 10


def test_every_path_in_the_table_exists() -> None:
    missing = [p for p in table_paths() if not (ROOT / p).exists()]
    assert missing == []


def test_every_lib_module_is_in_the_table() -> None:
    named = set(table_paths())
    assert [m for m in lib_modules() if m not in named] == []


def import_graph(package: str) -> dict[str, set[str]]:
    """Module → the modules of `package` it imports, at the top or inside functions (a deferred import
    that closes a circle is still a circle); imports under `if TYPE_CHECKING:` are for annotations only."""
    modules: dict[str, Path] = {}
    for path in (ROOT / package).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(node) for block in ast.walk(tree)
                       if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                       for node in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle found by a depth-first walk, as the modules along it."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_cycle_finder_sees_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


@pytest.mark.parametrize("package", ["lib", "sandbox"])
def test_no_import_cycles(package: str) -> None:
    assert cycles(import_graph(package)) == []
