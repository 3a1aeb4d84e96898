"""The package layering of server/tether, checked over every import statement (ast; nothing is
imported). The order below is the one place it is written; docs/architecture.md draws it.

A module may import from its own package and from packages in lower layers only. Modules of the
first layer (small shared modules, each its own unit) may import one another; nothing may form a
cycle between units. Imports inside functions and under ``TYPE_CHECKING`` count like any other:
a lazy import is a cost decision, not a licence to reach upwards.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"
PACKAGE = SERVER / "tether"

# Lowest first. A unit is a subpackage (``tether.store``: all its modules) or, in the first layer,
# one module.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "tether",  # __init__: the version
        "tether.record",
        "tether.protocol",
        "tether.errors",
        "tether.sha",
        "tether.text",
        "tether.redact",
        "tether.jsonsafe",
        "tether.procs",
        "tether.safefs",
        "tether.paths",
        "tether.model",
        "tether.humanize",
        "tether.git",
        "tether.user_config",
    ),
    ("tether.store",),
    ("tether.scan",),
    ("tether.checkpoints",),
    ("tether.conversations",),
    ("tether.tmux",),
    ("tether.editor",),
    ("tether.agent",),
    ("tether.remote",),
    ("tether.setup",),
    ("tether.lsp", "tether.mcp"),
    ("tether.cli",),
    ("tether.__main__",),
)
# Third-party packages only one unit may import (the rest of Tether stays free of them; ruff's
# TID251 says the same for the editors' linters).
OWNED = {
    "pygls": "tether.lsp",
    "lsprotocol": "tether.lsp",
    "mcp": "tether.mcp",
    "pydantic": "tether.mcp",
    "watchdog": "tether.scan",
}
SHARED = 0

LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SERVER).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str) -> str | None:
    """The unit a module belongs to (None: not listed)."""
    if module in LAYER_OF and LAYER_OF[module] == SHARED:
        return module
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYER_OF and LAYER_OF[prefix] != SHARED:
            return prefix
    return module if module in LAYER_OF else None


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file; ``from tether import x`` names tether.x
    when x is a module, else tether itself."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (SERVER / sub.replace(".", "/")).with_suffix(".py").exists() or (
                    SERVER / sub.replace(".", "/") / "__init__.py"
                ).exists()
                yield node.lineno, sub if is_module else node.module


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def edges() -> dict[tuple[str, str], list[str]]:
    """(from unit, to unit) → where (file:line)."""
    out: dict[tuple[str, str], list[str]] = {}
    for path in modules():
        src = unit_of(module_name(path))
        assert src is not None
        for line, mod in imports(path):
            if mod.split(".")[0] != "tether":
                continue
            dst = unit_of(mod)
            assert dst is not None, f"{path}:{line}: imports {mod}, which no layer lists"
            if dst != src:
                out.setdefault((src, dst), []).append(f"{path.relative_to(SERVER)}:{line}")
    return out


def test_every_module_is_in_a_layer() -> None:
    missing = [module_name(p) for p in modules() if unit_of(module_name(p)) is None]
    assert not missing, f"add these to LAYERS in {Path(__file__).name}: {missing}"


Edges = dict[tuple[str, str], list[str]]


def layer_violations(found: Edges) -> list[str]:
    bad = []
    for (src, dst), where in sorted(found.items()):
        ls, ld = LAYER_OF[src], LAYER_OF[dst]
        if ld < ls or (ld == ls == SHARED):
            continue
        kind = "upward" if ld > ls else "sideways"
        bad.append(f"{src} -> {dst} ({kind}): {', '.join(where)}")
    return bad


def find_cycle(found: Edges) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for src, dst in found:
        graph.setdefault(src, set()).add(dst)
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_no_upward_or_sideways_import() -> None:
    bad = layer_violations(edges())
    assert not bad, "\n".join(bad)


def test_no_cycle_between_units() -> None:
    cycle = find_cycle(edges())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_third_party_frameworks_stay_in_their_package() -> None:
    bad = []
    for path in modules():
        unit = unit_of(module_name(path))
        for line, mod in imports(path):
            owner = OWNED.get(mod.split(".")[0])
            if owner is not None and unit != owner:
                bad.append(f"{path.relative_to(SERVER)}:{line}: {mod} (only {owner} may)")
    assert not bad, "\n".join(bad)


def test_the_rules_catch_what_they_must(tmp_path: Path) -> None:
    """An upward import, a sideways one (the LSP and MCP servers are peers), a cycle between
    shared modules, and imports read from every form of import statement."""
    assert unit_of("tether.store.db") == "tether.store"
    assert unit_of("tether.paths") == "tether.paths"
    assert layer_violations({("tether.store", "tether.lsp"): ["x:1"]}) == [
        "tether.store -> tether.lsp (upward): x:1"
    ]
    assert layer_violations({("tether.lsp", "tether.mcp"): ["x:1"]}) == [
        "tether.lsp -> tether.mcp (sideways): x:1"
    ]
    assert (
        layer_violations({("tether.lsp", "tether.store"): ["x:1"], ("tether.paths", "tether.errors"): []})
        == []
    )
    shared = {("tether.paths", "tether.safefs"): [], ("tether.safefs", "tether.paths"): []}
    assert find_cycle(shared) == ["tether.paths", "tether.safefs", "tether.paths"]
    assert find_cycle({("tether.lsp", "tether.store"): []}) is None
    bad = tmp_path / "m.py"
    bad.write_text(
        "from tether.lsp.server import create_server\nimport pygls\n"
        "def f():\n    from tether import protocol, __version__\n"
    )
    assert [m for _, m in imports(bad)] == ["tether.lsp.server", "pygls", "tether.protocol", "tether"]
