"""The package's layers, read from its source: no import cycle between packages, no import runs upward.

The layers, bottom-up: parsing -> service -> config -> render -> runtime -> ops -> cli.
A module may import its own package and any lower layer, never a higher one. The four ``ops`` packages
(health, backup, readiness, loadtest) share one layer and may use each other, but without a cycle.
``schedgen_ops/*.py`` (errors, resources, the version) sits below every layer.
No two modules import each other either, directly or round a loop (a parent package's ``__init__``,
which Python runs first anyway, is not counted as imported by its own modules).

What counts as an import: every ``import``/``from ... import`` statement anywhere in a module, including
those inside functions, methods and ``try:`` blocks, because a function-level import is still a runtime
dependency (it only moves the cost and hides the cycle). Excluded: imports under ``if TYPE_CHECKING:``, which
never run and exist for annotations only. Dynamic ``importlib.import_module(...)`` calls are not counted
(there are none across packages). ``from pkg import name`` counts as importing ``pkg.name`` when that is a
module, else ``pkg``.

Run ``python tests/test_architecture.py`` to print the graph's current violations and cycles.
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "schedgen_ops"
SOURCE = ROOT / PACKAGE

# The layer of each package, bottom-up. The ops packages share a layer.
LAYERS: dict[str, int] = {
    "parsing": 0,
    "service": 1,
    "config": 2,
    "render": 3,
    "runtime": 4,
    "ops/health": 5,
    "ops/backup": 5,
    "ops/readiness": 5,
    "ops/loadtest": 5,
    "cli": 6,
}

# Allow-lists: imports not fixed yet, each an edge "importing module -> imported module" with its reason.
# The tests check every list is exact: a new violation fails, and so does an entry that no longer is one
# (the import is gone or no longer closes a cycle: delete the entry). The lists only shrink.

# Imports of a higher layer.
ALLOWED_UPWARD: frozenset[str] = frozenset()

# Imports left out of the package graph, each of which closes a cycle between packages.
ALLOWED_PACKAGE_CYCLE_EDGES: frozenset[str] = frozenset()

# Imports left out of the module graph, each of which closes a cycle between modules.
ALLOWED_MODULE_CYCLE_EDGES: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Import:
    """One import statement's edge: ``source`` (module) imports ``target`` (module) at ``file:line``."""

    source: str
    target: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.source} -> {self.target}"


Graph = dict[str, dict[str, Import]]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SOURCE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import node, at any depth, except those in the body of ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve(node: ast.ImportFrom, source: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


@functools.cache
def imports() -> list[Import]:
    """Every import of a ``schedgen_ops`` module by a ``schedgen_ops`` module."""
    modules = _modules()
    out: list[Import] = []
    for source, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        file = str(path.relative_to(ROOT))
        for node in _import_nodes(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve(node, source, path.name == "__init__.py")
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for target in dict.fromkeys(targets):
                if target == PACKAGE or target.startswith(PACKAGE + "."):
                    out.append(Import(source, target, file, node.lineno))
    return out


def package_of(module: str) -> str | None:
    """The layered package a module belongs to (``ops/health``, ``cli``), None for the base modules."""
    parts = module.split(".")[1:]
    if not parts:
        return None
    key = "/".join(parts[:2]) if parts[0] == "ops" and len(parts) > 1 else parts[0]
    return key if key in LAYERS else None


def upward(edges: list[Import]) -> list[Import]:
    """Imports of a higher layer than the importer's."""
    out = []
    for edge in edges:
        src, dst = package_of(edge.source), package_of(edge.target)
        if src and dst and LAYERS[dst] > LAYERS[src]:
            out.append(edge)
    return out


def _key(edge: Import) -> str:
    return f"{edge.source} -> {edge.target}"


def package_graph(edges: list[Import], allowed: frozenset[str] = frozenset()) -> Graph:
    """package -> {imported package: the first import making that edge}, minus the ``allowed`` imports."""
    graph: Graph = {name: {} for name in LAYERS}
    for edge in edges:
        src, dst = package_of(edge.source), package_of(edge.target)
        if src and dst and src != dst and _key(edge) not in allowed:
            graph[src].setdefault(dst, edge)
    return graph


def module_graph(edges: list[Import], allowed: frozenset[str] = frozenset()) -> Graph:
    """module -> {imported module: the first import making that edge}, minus the ``allowed`` imports.

    The implicit run of a parent package's ``__init__`` is not an edge: Python runs it first, so a
    package that re-exports its own modules is no cycle.
    """
    graph: Graph = {name: {} for name in _modules()}
    for edge in edges:
        if edge.target in graph and edge.source != edge.target and _key(edge) not in allowed:
            graph[edge.source].setdefault(edge.target, edge)
    return graph


def reaches(graph: Graph, start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return start == goal


def stale(
    allowed: frozenset[str], edges: list[Import], node: Callable[[str], str | None], graph: Graph
) -> list[str]:
    """Allow-listed imports that no longer close a cycle in ``graph`` (the full graph): delete them."""
    present = {_key(e): e for e in edges}
    out = []
    for key in sorted(allowed):
        edge = present.get(key)
        src, dst = (node(edge.source), node(edge.target)) if edge else (None, None)
        if edge is None or src is None or dst is None or not reaches(graph, dst, src):
            out.append(key)
    return out


def cycles(graph: Graph, limit: int = 50) -> list[list[str]]:
    """Elementary cycles as closed paths ([a, b, a]), each once, starting at its smallest node.

    From each start node, depth-first through larger nodes only, so each cycle is found from its
    smallest member alone. ``limit`` keeps the report of a badly tangled graph readable.
    """
    found: list[list[str]] = []
    for start in sorted(graph):
        stack: list[list[str]] = [[start]]
        while stack and len(found) < limit:
            path = stack.pop()
            for nxt in sorted(graph[path[-1]], reverse=True):
                if nxt == start:
                    found.append([*path, start])
                elif nxt > start and nxt not in path:
                    stack.append([*path, nxt])
    return sorted(found, key=lambda c: (len(c), c))[:limit]


def describe_cycle(graph: Graph, path: list[str]) -> str:
    hops = [f"    {graph[a][b]}" for a, b in itertools.pairwise(path)]
    return "  " + " -> ".join(path) + "\n" + "\n".join(hops)


def test_the_walk_sees_function_level_imports_and_skips_type_checking() -> None:
    """The graph must count an import hidden in a function and ignore annotation-only ones."""
    tree = ast.parse(
        "import a\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import hidden\nelse:\n    import shown_else\n"
        "def f():\n    from b import c\n    if x:\n        import d\n"
        "class K:\n    def m(self):\n        try:\n            import e\n        except ImportError:\n"
        "            pass\n"
    )
    names = {
        alias.name if isinstance(node, ast.Import) else node.module or ""
        for node in _import_nodes(tree)
        for alias in node.names
    }
    assert names == {"a", "typing", "shown_else", "b", "d", "e"}


def test_cycle_finder_reports_the_path() -> None:
    """A known three-package loop is found and printed as a closed path; an acyclic graph has none."""
    edge = Import("x", "y", "f.py", 1)
    graph = {"a": {"b": edge}, "b": {"c": edge}, "c": {"a": edge}, "d": {"a": edge}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b": edge}, "b": {}, "c": {"a": edge}}) == []


def test_every_layered_package_exists() -> None:
    """A renamed package must be renamed here too, or its imports would silently go unchecked."""
    for name in LAYERS:
        assert (SOURCE / name / "__init__.py").is_file(), name


def test_allow_lists_are_exact_and_fixed_entries_fail() -> None:
    """An allow-listed import that no longer exists, or no longer closes a cycle, is reported as stale."""
    edges = [Import("a", "b", "a.py", 1), Import("b", "a", "b.py", 1), Import("b", "c", "b.py", 2)]
    graph = {"a": {"b": edges[0]}, "b": {"a": edges[1], "c": edges[2]}, "c": {}}
    assert stale(frozenset({"b -> a"}), edges, str, graph) == []
    assert stale(frozenset({"b -> c", "x -> y"}), edges, str, graph) == ["b -> c", "x -> y"]


def test_no_import_cycle_between_packages() -> None:
    edges = imports()
    graph = package_graph(edges, ALLOWED_PACKAGE_CYCLE_EDGES)
    found = cycles(graph)
    assert not found, "import cycles between packages:\n" + "\n".join(describe_cycle(graph, c) for c in found)
    gone = stale(ALLOWED_PACKAGE_CYCLE_EDGES, edges, package_of, package_graph(edges))
    assert not gone, "fixed, remove from ALLOWED_PACKAGE_CYCLE_EDGES:\n" + "\n".join(gone)


def test_no_import_cycle_between_modules() -> None:
    edges = imports()
    graph = module_graph(edges, ALLOWED_MODULE_CYCLE_EDGES)
    found = cycles(graph)
    assert not found, "import cycles between modules:\n" + "\n".join(describe_cycle(graph, c) for c in found)
    modules = _modules()
    gone = stale(
        ALLOWED_MODULE_CYCLE_EDGES, edges, lambda m: m if m in modules else None, module_graph(edges)
    )
    assert not gone, "fixed, remove from ALLOWED_MODULE_CYCLE_EDGES:\n" + "\n".join(gone)


def test_no_module_imports_a_higher_layer() -> None:
    violations = upward(imports())
    new = [str(edge) for edge in violations if _key(edge) not in ALLOWED_UPWARD]
    gone = sorted(ALLOWED_UPWARD - {_key(edge) for edge in violations})
    assert not new, "imports of a higher layer (layers: " + " -> ".join(LAYERS) + "):\n" + "\n".join(new)
    assert not gone, "fixed, remove from ALLOWED_UPWARD:\n" + "\n".join(gone)


def _untyped_config_uses(source: str, label: str) -> Iterator[str]:
    """``config: Any`` parameters and ``getattr(config...)`` reads: a config reached around its type."""
    for node in ast.walk(ast.parse(source, label)):
        if isinstance(node, ast.arg) and node.annotation is not None:
            named = "config" in node.arg.lower() or node.arg == "cfg"
            if named and ast.unparse(node.annotation) == "Any":
                yield f"{label}:{node.lineno}: {node.arg}: Any"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
            first = ast.unparse(node.args[0]) if node.args else ""
            if "config" in first.lower() or first == "cfg":
                yield f"{label}:{node.lineno}: {ast.unparse(node)}"


def test_the_config_is_read_through_its_type() -> None:
    """Every reader takes a ``Config`` (or ``Config | None``): a renamed field fails mypy, not a user."""
    found = [
        hit
        for path in sorted(SOURCE.rglob("*.py"))
        for hit in _untyped_config_uses(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert not found, "config read around its type:\n" + "\n".join(found)


def test_the_config_finder_sees_both_forms() -> None:
    sample = "from typing import Any\ndef f(config: Any):\n    return getattr(config, 'api', None)\n"
    assert len(list(_untyped_config_uses(sample, "sample.py"))) == 2


# Where a queued job's ledger row may change: only inside the RQ job (after RQ popped it off its queue).
# `service/queued_cache.py` answers polls from a cached queued row on that guarantee.
QUEUED_ROW_WRITERS = {"schedgen_ops/service/tasks.py"}
QUEUED_ROW_CALLS = {"claim", "lock_and_claim"}


def _queued_row_writes(source: str, label: str) -> Iterator[str]:
    """Calls that change a *queued* row: a claim, or a ``fail`` allowed to start from ``queued``; and SQL
    that updates or deletes jobs outside the ledger module."""
    for node in ast.walk(ast.parse(source, label)):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            from_queued = any(
                keyword.arg == "from_status" and "queued" in ast.unparse(keyword.value)
                for keyword in node.keywords
            )
            if name in QUEUED_ROW_CALLS or from_queued:
                yield f"{label}:{node.lineno}: {ast.unparse(node.func)}(...)"
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = " ".join(node.value.split()).upper()
            if ("UPDATE JOBS" in text or "DELETE FROM JOBS" in text) and not label.endswith(
                "service/ledger.py"
            ):
                yield f"{label}:{node.lineno}: SQL on jobs outside the ledger"


def test_queued_jobs_change_only_inside_the_rq_job() -> None:
    """A queued row changes only where a worker runs the job (`service/tasks.py`), so the queued-row cache
    of the status poll is right to trust Redis's "still waiting" (`service/queued_cache.py`)."""
    found = [
        hit
        for path in sorted(SOURCE.rglob("*.py"))
        if str(path.relative_to(ROOT)) not in QUEUED_ROW_WRITERS and path.name != "ledger.py"
        for hit in _queued_row_writes(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert not found, "a queued job's row changed outside the RQ job:\n" + "\n".join(found)
    writers = (ROOT / name for name in QUEUED_ROW_WRITERS)
    assert all(list(_queued_row_writes(path.read_text(), path.name)) for path in writers), "stale allow-list"


def test_the_queued_row_finder_sees_each_form() -> None:
    sample = (
        "def f(conn, job):\n"
        "    ledger.claim(conn, job)\n"
        "    lock_and_claim(conn, job)\n"
        "    ledger.fail(conn, job, from_status=('queued',))\n"
        "    ledger.fail(conn, job)\n"
        "    conn.execute('update  jobs set status = 1')\n"
    )
    assert len(list(_queued_row_writes(sample, "x/reconciler.py"))) == 4


if __name__ == "__main__":
    all_edges = imports()
    found_upward = upward(all_edges)
    print(f"{len(found_upward)} upward imports:")
    for item in found_upward:
        print(" ", item)
    for title, graph_now in (("packages", package_graph(all_edges)), ("modules", module_graph(all_edges))):
        found_cycles = cycles(graph_now)
        print(f"{len(found_cycles)} elementary cycles between {title} (no allow-list):")
        for cycle_path in found_cycles:
            print(describe_cycle(graph_now, cycle_path))
