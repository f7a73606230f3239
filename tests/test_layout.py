"""The package's shape, kept by tests: the core never imports the tutorial layer, no
module imports itself back through others, and no function of the package runs over 60
lines without saying why in its docstring."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crossmatch_lite", "ablations", "data_download", "benchmarks")
# The command line is the front door: it opens every tool, the tutorial book included.
FRONT_DOOR = "crossmatch_lite.__main__"


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = f
    return out


def imports(name: str, path: Path, known: dict) -> set[str]:
    """The project's modules that `name` imports (anywhere in the file)."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                found.add(t)
    return found


def test_the_core_never_imports_the_tutorial_layer():
    known = modules()
    core = [m for m in known if m.startswith("crossmatch_lite") and not m.startswith("crossmatch_lite.tutorial")
            and m != FRONT_DOOR]
    bad = {m: sorted(t for t in imports(m, known[m], known) if t.startswith("crossmatch_lite.tutorial"))
           for m in core}
    assert {m: t for m, t in bad.items() if t} == {}


def test_no_import_cycles():
    known = modules()
    graph = {m: imports(m, f, known) for m, f in known.items()}
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = 1
        for t in graph[m]:
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif not state.get(t):
                visit(t, stack + [t])
        state[m] = 2

    for m in graph:
        if not state.get(m):
            visit(m, [m])
    assert cycles == []


def test_functions_are_short_or_say_why():
    long = []
    for name, f in modules().items():
        if not name.startswith("crossmatch_lite"):
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                doc = (ast.get_docstring(node) or "").lower()
                if "long" not in doc and "lines" not in doc:
                    long.append(f"{name}.{node.name}")
    assert long == []
