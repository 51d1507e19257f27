"""The layout docs/layout.md describes holds: wings import only downward, no import cycles (imports
inside functions counted), no module over 350 lines, a small package root, and every function the
page's walk of a row names exists."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "lenprof"
LAYOUT = (REPO / "docs" / "layout.md").read_text(encoding="utf-8")
# a wing's rank: a module may import its own wing and wings of lower rank, never higher
RANK = {
    "errors": 0,
    "version": 0,
    "hashing": 0,
    "stopping": 0,
    "io": 1,
    "rows": 2,
    "count": 2,
    "stats": 3,
    "score": 3,
    "report": 4,
    "engine": 5,
}
RANK |= {"api": 6, "train": 7, "integrations": 8, "cli": 9, "__init__": 10, "__main__": 10}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every lenprof module ``path`` imports, anywhere in it (a name imported from a package
    counts as the submodule when it is one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; lenprof imports by full name")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lenprof"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if (REPO / sub.replace(".", "/")).with_suffix(".py").exists() else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lenprof")}
    return found - {"lenprof"}


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: imports(path) for name, path in MODULES.items()}


def wing(name: str) -> str:
    return name.split(".")[1] if "." in name else "__init__"


def test_wings_import_only_downward():
    upward = [
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        for t in targets
        if wing(t) != wing(m) and RANK[wing(t)] >= RANK[wing(m)]
    ]
    assert upward == []
    # rows and count share a rank: neither imports the other
    assert not [t for m, ts in GRAPH.items() for t in ts if {wing(m), wing(t)} == {"rows", "count"}]


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(GRAPH.get(m, ())):
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(t) :] + [t]))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in GRAPH:
        if m not in state:
            visit(m, [m])


def test_modules_are_small_and_the_root_is_short():
    long = {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 350}
    assert long == {}
    assert len([n for n in MODULES if n.count(".") == 1 and not (PACKAGE / n.split(".")[1]).is_dir()]) <= 8


def test_every_function_the_layout_page_names_exists():
    named = set(re.findall(r"`(lenprof(?:\.\w+)+)`", LAYOUT))
    assert len(named) >= 20
    for dotted in sorted(named):
        parts = dotted.split(".")
        for k in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:k]))
            except ModuleNotFoundError:
                continue
            for attr in parts[k:]:
                assert hasattr(obj, attr), f"docs/layout.md names {dotted}: no {attr}"
                obj = getattr(obj, attr)
            break


def test_the_walk_of_a_row_takes_at_most_eight_steps():
    walk = LAYOUT.split("## One row, from file to cleaned output")[1].split("\n## ")[0]
    steps = re.findall(r"^(\d+)\. ", walk, flags=re.M)
    assert steps == [str(i) for i in range(1, len(steps) + 1)] and 5 <= len(steps) <= 8
