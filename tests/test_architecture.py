"""The layout keeps its promises (docs/architecture.md): imports point down the layers, no
module imports in a cycle, and `fcnseg --help` needs no torch."""

from __future__ import annotations

import ast
from pathlib import Path

import fcnseg

PACKAGE = Path(fcnseg.__file__).parent
# Each layer may import the layers of lower rank, and itself.
RANK = {"errors": 0, "registry": 1, "device": 1, "blocks": 2, "models": 3, "data": 3,
        "files": 4, "evaluation": 5, "training": 6, "inference": 6, "demo": 7,
        "view": 7, "cli": 8}  # fmt: skip


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("fcnseg", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The fcnseg modules ``name`` imports, anywhere in it (functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("fcnseg")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if not base.startswith("fcnseg"):
                continue
            for alias in node.names:  # `from . import precision` names a module
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return found - {"fcnseg", name}


def _layer(module: str) -> str:
    return module.split(".")[1]


def test_imports_point_down_the_layers() -> None:
    known = _modules()
    wrong = []
    for name, path in known.items():
        if name in ("fcnseg", "fcnseg.__main__"):
            continue
        for target in _imports(name, path, known):
            mine, theirs = _layer(name), _layer(target)
            if mine != theirs and RANK[theirs] >= RANK[mine]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, wrong


def test_no_import_cycle() -> None:
    known = _modules()
    graph = {name: _imports(name, path, known) & known.keys() for name, path in known.items()}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError(" → ".join([*trail[trail.index(name) :], name]))
        if name in done:
            return
        for target in graph[name]:
            # A package imports its own modules; a module importing its package's __init__
            # for a sibling is the same edge seen from below: only cross-package edges count.
            if target.startswith(name + "."):
                continue
            visit(target, [*trail, name])
        done.add(name)

    for name in graph:
        visit(name, [])


def test_every_layer_is_registered() -> None:
    layers = {_layer(n) for n in _modules() if n.count(".") >= 1} - {"__main__"}
    assert layers == set(RANK)
