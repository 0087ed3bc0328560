"""The layout holds: data flows one way, front doors hold no SQL, only the schema writes DDL.

Read from the source with `ast`, so a violation fails here before anyone has
to find it by reading.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("traces", "metrics", "autolibra", "pipa", "libra")
# what each package may import from the others: the data flows one way
ALLOWED = {
    "traces": set(),
    "metrics": {"traces"},
    "autolibra": {"traces", "metrics"},
    "pipa": {"traces", "metrics"},
    "libra": {"traces", "metrics", "autolibra", "pipa"},
}
FRONT_DOOR_LIBS = ("streamlit", "typer", "rich")


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    out["app"] = ROOT / "app.py"
    return out


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_no_arrow_against_the_flow():
    bad = []
    for name, path in modules().items():
        pkg = name.split(".")[0]
        if pkg not in ALLOWED:
            continue
        for imp in imports_of(path):
            other = imp.split(".")[0]
            if other in PACKAGES and other != pkg and other not in ALLOWED[pkg]:
                bad.append(f"{name} imports {imp}")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_circle_between_modules():
    mods = modules()
    graph = {m: {i for i in imports_of(p) if i in mods and i != m} for m, p in mods.items()}
    # a package's __init__ may gather its own submodules; that is not a circle of ideas
    graph = {m: {i for i in deps if not (m == i.rsplit(".", 1)[0] and i.startswith(m + "."))}
             for m, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, circles


def test_nothing_below_libra_imports_a_front_door_library():
    bad = [f"{name} imports {imp}" for name, path in modules().items()
           if name.split(".")[0] in ("traces", "metrics", "autolibra", "pipa")
           for imp in imports_of(path) if imp.split(".")[0] in FRONT_DOOR_LIBS]
    assert not bad, bad


SQL = re.compile(r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE|MERGE\s+INTO)\b")
STORE_CALLS = (".execute(", ".executemany(", ".df(", ".scalar(", ".sql(")


def test_front_doors_hold_no_sql():
    bad = []
    doors = [*(ROOT / "libra" / "cli").rglob("*.py"), *(ROOT / "libra" / "web").rglob("*.py"), ROOT / "app.py"]
    for f in doors:
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                bad.append(f"{f.relative_to(ROOT)}:{node.lineno} SQL text")
        text = f.read_text(encoding="utf-8")
        bad += [f"{f.relative_to(ROOT)} calls {c}" for c in STORE_CALLS if c in text]
    assert not bad, bad


def test_only_the_schema_writes_ddl():
    ddl = re.compile(r"\b(CREATE|ALTER|DROP)\s+(TABLE|INDEX|SEQUENCE|VIEW)\b")
    bad = []
    for name, path in modules().items():
        if name == "traces.schema":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ddl.search(node.value):
                bad.append(f"{name}:{node.lineno}")
    assert not bad, bad


def test_no_importer_writes_its_own_record_loop():
    """The record loop is `RecordImporter.parse` (in records.py); an importer that needs a loop of its own says why."""
    loops = []
    for f in (ROOT / "traces" / "importers").glob("*.py"):
        if f.name == "records.py":
            continue
        src = f.read_text(encoding="utf-8")
        if re.search(r"for rec in iter_records\(source\):\n(\s+)if isinstance\(rec, Rejected\):\n\s+yield rec\n"
                     r"\s+continue\n\s+try:\n\s+yield Parsed\(\(self\.run_of", src):
            loops.append(f.name)
    assert not loops, loops


def test_the_facade_is_typed_and_complete():
    import libra

    assert (ROOT / "libra" / "py.typed").exists()
    for name in libra.__all__:
        assert getattr(libra, name) is not None, name
    for name in ("open_store", "ingest", "induce", "score", "reports"):
        assert name in libra.__all__
    assert callable(libra.reports.agent_summary)
