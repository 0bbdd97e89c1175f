"""No import circles between the project's modules (issue 23, item 6).

Reads every module of the project's packages with `ast` (no import is executed), counts every import
statement wherever it stands (module level, inside functions, relative or absolute), and fails on any
strongly connected component of more than one module, naming a cycle through it.

An import ``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``; the
parent packages Python also initialises along the way are not edges, or every package whose
``__init__`` imports its own submodules would count as a circle.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ssldyn", "linear_dynamics", "deep", "analysis", "figures")


def project_modules(root: Path, packages) -> dict[str, Path]:
    """Dotted module name → file, for every .py file of `packages` under `root`."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imported_names(module: str, path: Path, tree: ast.AST):
    """Every dotted name `module` imports, relative imports resolved; `from x import y` gives x.y and x."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield (alias.name,)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            for alias in node.names:
                yield (f"{prefix}.{alias.name}", prefix)


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the project modules it imports (the first candidate of each import that is one)."""
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = set()
        for candidates in _imported_names(module, path, tree):
            target = next((name for name in candidates if name in modules), None)
            if target is not None and target != module:
                targets.add(target)
        graph[module] = targets
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of `graph`, iteratively (no recursion limit)."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def a_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One shortest circle through the first module of `component`, as a → b → … → a."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    return paths[node] + [start]
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def import_cycles(root: Path, packages) -> list[list[str]]:
    """One named circle per strongly connected component of more than one module."""
    graph = import_graph(project_modules(root, packages))
    return [a_cycle(graph, c) for c in strongly_connected(graph) if len(c) > 1]


def test_the_project_has_no_import_circles():
    assert len(project_modules(ROOT, PACKAGES)) > 50  # the walk found the packages
    cycles = import_cycles(ROOT, PACKAGES)
    assert not cycles, "import circles: " + "; ".join(" → ".join(c) for c in cycles)


def test_the_shared_leaves_import_nothing_of_the_project():
    """What both sides of a former circle read: the CLI's output and the head kinds stay leaves."""
    graph = import_graph(project_modules(ROOT, PACKAGES))
    assert graph["ssldyn.output"] == set() and graph["deep.head_kinds"] == set()
    assert not any("ssldyn.cli" in graph[m] for m in graph if m.endswith(".cli") and m != "ssldyn.cli")


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_a_planted_circle_is_found(tmp_path):
    """pkg.a → pkg.sub.b (function-level, relative) → pkg.c (`from pkg import c`) → pkg.a; pkg.d is outside it."""
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "import os\n\ndef f():\n    from .sub import b\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/b.py": "from .. import c\n",
        "pkg/c.py": "import pkg.a\nfrom pkg.d import VALUE\n",
        "pkg/d.py": "VALUE = 1\n",
    })
    assert import_cycles(tmp_path, ["pkg"]) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]


def test_one_way_imports_and_package_inits_are_not_circles(tmp_path):
    """A package's __init__ importing its submodules, which import each other one way, is no circle."""
    _write(tmp_path, {
        "pkg/__init__.py": "from pkg.reg import REGISTRY\n",
        "pkg/reg.py": "from . import base, one\nREGISTRY = {'one': one.One}\n",
        "pkg/base.py": "import json\n",
        "pkg/one.py": "from pkg.base import json\nfrom pkg import base\n",
    })
    assert import_cycles(tmp_path, ["pkg"]) == []
