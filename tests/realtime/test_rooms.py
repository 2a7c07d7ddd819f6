"""realtime/ in rooms: no import cycle between its modules (imports inside functions count too), every import goes to
its own room or a lower layer (docs/architecture.md), and every module imports in a fresh interpreter."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A module may import its own room and rooms of lower layers only (docs/architecture.md, "realtime/ in rooms").
LAYERS = {"shared": 0, "sources": 1, "engine": 2, "post": 2, "publish": 2, "view": 2, "outputs": 3, "run": 4,
          "fleet": 5, "bench": 6}
SHARED = {"realtime", "realtime.frames", "realtime.metrics", "realtime.counters"}


def module_names(root: Path = ROOT) -> dict[str, Path]:
    names = {}
    for path in sorted((root / "realtime").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the realtime modules it imports, at any depth of its code (a lazy import is a dependency too)."""
    names = module_names(root)
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                deps |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base for alias in node.names}
        graph[name] = {d for d in deps if d in names and d != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def room(module: str) -> str:
    parts = module.split(".")
    if module in SHARED:
        return "shared"
    if len(parts) > 2 or (ROOT / "realtime" / parts[1]).is_dir():
        return parts[1]
    return "run"  # the top of realtime/: the command line, the camera file, the pipeline that wires the rooms


def test_cycle_finder_finds_a_lazy_loop_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_graph_counts_imports_inside_functions(tmp_path):
    (tmp_path / "realtime" / "room").mkdir(parents=True)
    (tmp_path / "realtime" / "__init__.py").write_text("")
    (tmp_path / "realtime" / "room" / "__init__.py").write_text("")
    (tmp_path / "realtime" / "room" / "a.py").write_text("def f():\n    from realtime.room import b\n")
    (tmp_path / "realtime" / "room" / "b.py").write_text("from . import a\n")
    graph = import_graph(tmp_path)
    assert graph["realtime.room.a"] == {"realtime.room.b"} and graph["realtime.room.b"] == {"realtime.room.a"}
    assert find_cycle(graph) == ["realtime.room.a", "realtime.room.b", "realtime.room.a"]


def test_no_import_cycle_among_realtime_modules():
    graph = import_graph()
    assert len(graph) > 40 and graph["realtime.cli"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_rooms_import_their_own_room_or_lower_layers_only():
    graph = import_graph()
    unknown = sorted({room(m) for m in graph} - set(LAYERS))
    assert not unknown, f"rooms without a layer: {unknown}; add them to LAYERS and to docs/architecture.md"
    upward = [f"{m} ({room(m)}) -> {d} ({room(d)})" for m, deps in sorted(graph.items()) for d in sorted(deps)
              if room(m) != room(d) and LAYERS[room(d)] >= LAYERS[room(m)]]
    assert not upward, "imports against the rooms' direction:\n" + "\n".join(upward)


def test_every_realtime_module_imports():
    names = sorted(module_names())
    code = ("import importlib, sys, traceback\nbad = []\n"
            f"for name in {names!r}:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except Exception as exc:\n        bad.append(f'{name}: {type(exc).__name__}: {exc}')\n"
            "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
