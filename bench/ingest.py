"""Ingest throughput and memory against DuckDB's own JSON reader, in one run.

Generates demo runs as Libra generic JSONL and as OTLP JSON (as the
OpenTelemetry Collector's file exporter writes it), at two sizes, then for
each file times `libra ingest` into a fresh store and DuckDB's `read_json`
loading the same file into a table (steps unnested), each in its own
process. For OTLP the headline reference is stronger: the same spans
flattened one span per line into a file, loaded by `read_json` into a store
file and into memory (the raw load, the limit a span-per-line importer could
reach), and the bench counts that every span landed in each. Beside them, a sketch of the span→step
mapping's heavy parts done by DuckDB in SQL (`bench/otlp_sql_sketch.py`): how close to the flat load
an importer that maps in SQL instead of per span in Python could come.

Figures are CPU seconds of the whole process tree (user + system, parsing
processes included: they depend little on load) and the peak RSS of the
tree summed over its processes, sampled every 20 ms; Libra's OTLP ingest is run
`--memory-runs` times (default 3) and its peak is the highest of them.

    python bench/ingest.py                 # 200k and 1M steps
    python bench/ingest.py --steps 200000  # a quick run
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from libra.demo import generate_runs  # noqa: E402
from traces.export import run_to_otlp  # noqa: E402
from traces.importers.generic import run_to_record  # noqa: E402


def write_files(steps: int, out: Path) -> tuple[Path, Path, int]:
    generic, otlp = out / f"runs_{steps}.jsonl", out / f"otlp_{steps}.jsonl"
    n = 0
    with open(generic, "wb") as g, open(otlp, "wb") as o:
        for i, run in enumerate(generate_runs(steps // 12 + 10, seed=123, with_feedback=False)):
            g.write(orjson.dumps(run_to_record(run), default=str) + b"\n")
            # random ids, as tracers make them (a counter's all-digit ids are not what files hold)
            o.write(orjson.dumps(run_to_otlp(run, f"{random.Random(i).getrandbits(128):032x}")) + b"\n")
            n += len(run.steps)
            if n >= steps:
                break
    return generic, otlp, n


def flatten(otlp: Path, out: Path) -> int:
    """The OTLP file's spans one per line, each with its resource and scope: what `read_json` loads flat."""
    n = 0
    with open(otlp, "rb") as f, open(out, "wb") as o:
        for line in f:
            for rs in orjson.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for sp in ss["spans"]:
                        o.write(orjson.dumps({**sp, "resource": rs.get("resource"), "scope": ss.get("scope")}))
                        o.write(b"\n")
                        n += 1
    return n


def timed(cmd: list[str], roles: dict[str, float] | None = None) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds and peak RSS (MB) of a child process and its children; its stdout.

    `roles`, when given, gets each role's own peak: the process started ("main") and its
    children summed ("children"), which peak at different moments.
    """
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child cannot block on a full stderr
        return _timed(cmd, err, roles if roles is not None else {})


def _timed(cmd: list[str], err, roles: dict[str, float]) -> tuple[float, float, float, str]:
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
    peak = [0, 0, 0]  # the tree, the main process, its children
    done = threading.Event()

    def sample() -> None:  # the tree's resident memory, summed: ru_maxrss gives only the largest process
        root = psutil.Process(proc.pid)
        while not done.wait(0.02):
            try:
                main = root.memory_info().rss
                kids = sum(p.memory_info().rss for p in root.children(recursive=True) if p.is_running())
            except psutil.Error:
                continue
            peak[:] = max(peak[0], main + kids), max(peak[1], main), max(peak[2], kids)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)  # usage covers the children it waited for too
    wall = time.perf_counter() - t
    done.set()
    watcher.join()
    roles.update(main=peak[1] / 2**20, children=peak[2] / 2**20)
    if os.waitstatus_to_exitcode(status) not in (0,):
        err.seek(0)
        raise RuntimeError(f"{cmd} failed: {err.read().decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, max(peak[0] / 2**20, usage.ru_maxrss / 1024), out


def again(cmd: list[str], db: Path) -> tuple[float, dict[str, float]]:
    """One more ingest into a fresh store, for its peak memory alone."""
    db.unlink(missing_ok=True)
    roles: dict[str, float] = {}
    peak = timed(cmd, roles)[2]
    return peak, roles


def peak_of(runs: list[tuple[float, dict[str, float]]]) -> tuple[float, dict[str, float], str]:
    """The highest tree peak of several ingests, each role's highest, and every run's peak.

    One ingest's tree peak depends on whether the writer's peak (its last commit) falls before or after
    the parsing processes end, which varies from run to run by ~80 MB at 200k spans: the highest of a few
    is the peak a user must provision for, at every size alike.
    """
    return (max(p for p, _ in runs), {k: max(r[k] for _, r in runs) for k in ("main", "children")},
            ", ".join(f"{p:.0f}" for p, _ in runs))


_READ = "read_json(?, format = 'newline_delimited', maximum_object_size = 1073741824)"


def duckdb_load(select: str) -> str:
    """A child process's script: the input (argv[1]) loaded into a table in argv[2] by `select`; prints the rows."""
    return ("import duckdb, sys\ncon = duckdb.connect(sys.argv[2])\n"
            "con.execute('SET enable_progress_bar = false')\n"
            f"con.execute({'CREATE TABLE t AS ' + select!r}, [sys.argv[1]])\n"
            "print(con.execute('SELECT count(*) FROM t').fetchone()[0])\n")


DUCKDB_GENERIC = duckdb_load(f"SELECT r.run_id, unnest(r.steps, recursive := true) FROM {_READ} r")
DUCKDB_OTLP = duckdb_load(f"SELECT unnest(ss.spans, recursive := true) FROM (SELECT unnest(rs.scopeSpans) AS ss "
                          f"FROM (SELECT unnest(resourceSpans) AS rs FROM {_READ}))")
# The raw load: one span per line, read by DuckDB's parallel C++ reader, no unnesting.
DUCKDB_FLAT = duckdb_load(f"SELECT * FROM {_READ}")
# Not a loader: what the span→step mapping's heavy parts cost done by DuckDB (see the script), the floor for
# an importer that maps in SQL rather than per span in Python.
SQL_SKETCH = ROOT / "bench" / "otlp_sql_sketch.py"
SPANS_LANDED = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT coalesce(sum((metadata->>'spans')::BIGINT), 0) FROM runs").fetchone()[0])
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="*", default=[200_000, 1_000_000])
    ap.add_argument("--memory-runs", type=int, default=3,
                    help="ingests of the OTLP file whose highest peak is Libra's peak memory (default 3)")
    args = ap.parse_args()
    if args.memory_runs < 1:  # the first ingest is the timed one: there is no peak without it
        ap.error("--memory-runs must be at least 1")
    # Loading only, like read_json: the full-text index `libra ingest` builds afterwards on
    # small stores is left out (`--no-index`).
    libra = [sys.executable, "-m", "libra.cli.main", "ingest", "-q", "--no-index"]
    rows, mem, sketch = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        for target in args.steps:
            print(f"generating {target:,} steps …", file=sys.stderr)
            generic, otlp, n = write_files(target, tmpd)
            flat = tmpd / f"flat_{target}.jsonl"
            n_spans = flatten(otlp, flat)
            mb = {p: p.stat().st_size / 1e6 for p in (generic, otlp, flat)}
            print(f"  {n_spans:,} spans, {mb[otlp] * 1e6 / n_spans:,.0f} bytes each as OTLP JSON", file=sys.stderr)
            db, raw_db = tmpd / "libra.duckdb", tmpd / "raw.duckdb"
            for label, path, refs, unit in (
                ("generic JSONL", generic, [("read_json, steps unnested", DUCKDB_GENERIC, raw_db)], n),
                ("OTLP JSON", otlp, [("read_json, flat spans, to file", DUCKDB_FLAT, raw_db),
                                     ("read_json, flat spans, in memory", DUCKDB_FLAT, ":memory:"),
                                     ("read_json, OTLP unnested in SQL", DUCKDB_OTLP, raw_db),
                                     ("SQL sketch of the mapping to steps", SQL_SKETCH, raw_db)], n_spans),
            ):
                for p in (db, raw_db):
                    p.unlink(missing_ok=True)
                roles: dict[str, float] = {}
                wall, cpu, peak, _ = timed([*libra, "--db", str(db), str(path)], roles)
                landed = None
                if label == "OTLP JSON":
                    landed = int(timed([sys.executable, "-c", SPANS_LANDED, str(db)])[3].strip())
                    mem.setdefault("libra", []).append((target, *peak_of(
                        [(peak, roles)] + [again([*libra, "--db", str(db), str(path)], db)
                                           for _ in range(args.memory_runs - 1)])))
                rows.append((label, "libra ingest", unit, mb[path], wall, cpu, peak, landed, None))
                print(f"  {label}: libra {wall:.1f}s wall, {cpu:.1f} CPU-s", file=sys.stderr)
                for name, script, target_db, in refs:
                    raw_db.unlink(missing_ok=True)
                    src = flat if "flat" in name else path
                    w, c, m, out = timed([sys.executable, *(["-c", script] if isinstance(script, str) else [str(script)]),
                                          str(src), str(target_db)])
                    rows.append((label, name, unit, mb[src], w, c, m, int(out.split()[-1]), (wall, cpu)))
                    if label == "OTLP JSON" and name in ("read_json, flat spans, to file", "SQL sketch of the mapping to steps"):
                        sketch.setdefault(target, {})[name] = c
                    print(f"  {label}: {name} {w:.1f}s wall, {c:.1f} CPU-s", file=sys.stderr)
                for p in (db, raw_db):
                    p.unlink(missing_ok=True)
            for p in (generic, otlp, flat):
                p.unlink()
    head = (f"{'input':<14}{'loader':<36}{'records':>11}{'MB':>7}{'wall s':>8}{'CPU s':>8}{'rec/CPU-s':>11}"
            f"{'peak MB':>9}{'landed':>11}{'CPU ratio':>10}{'wall ratio':>11}")
    print(head)
    print("-" * len(head))
    for label, name, unit, size, wall, cpu, peak, landed, lib in rows:
        ratios = f"{cpu / lib[1]:>10.2f}{wall / lib[0]:>11.2f}" if lib else f"{'':>10}{'':>11}"
        print(f"{label:<14}{name:<36}{unit:>11,}{size:>7.0f}{wall:>8.1f}{cpu:>8.1f}{unit / cpu:>11,.0f}"
              f"{peak:>9.0f}{landed if landed is not None else '':>11}{ratios}")
    print("\nrecords: steps for generic JSONL, spans for OTLP; landed: rows the reference loaded, or the spans "
          "Libra's runs account for\nCPU ratio = the reference's CPU ÷ Libra's, for the same records (goal ≥ 0.33 "
          "against the flat load); peak MB = the process tree's resident memory")
    for target, cpu in sketch.items():
        if len(cpu) == 2:
            print(f"At {target:,} steps the SQL sketch of the mapping needs {cpu['SQL sketch of the mapping to steps']:.1f} "
                  f"CPU-s: the flat load is {cpu['read_json, flat spans, to file'] / cpu['SQL sketch of the mapping to steps']:.2f} "
                  "of it (a floor for an importer that maps in SQL; it leaves work out)")
    if len(mem.get("libra", [])) > 1:
        (a, m_a, r_a, s_a), (b, m_b, r_b, s_b) = mem["libra"][0], mem["libra"][-1]
        print(f"Libra's peak memory, OTLP (the highest of {args.memory_runs} ingests): {m_a:.0f} MB at {a:,} steps "
              f"(runs {s_a}), {m_b:.0f} MB at {b:,} (runs {s_b}); {m_b / m_a:.2f}x, goal ≤ 1.2x")
        # The tree's peak depends on whether the roles peak together, which at 200k they mostly do not:
        # each role's own peak says what grows with the store.
        print(f"  each role's own peak: the writing process {r_a['main']:.0f} → {r_b['main']:.0f} MB "
              f"({r_b['main'] / r_a['main']:.2f}x), the parsing processes {r_a['children']:.0f} → "
              f"{r_b['children']:.0f} MB ({r_b['children'] / r_a['children']:.2f}x)")


if __name__ == "__main__":
    main()
