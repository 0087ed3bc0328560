"""Ingest throughput and memory against DuckDB's own JSON reader, in one run.

Generates demo runs as Libra generic JSONL and as OTLP JSON (as the
OpenTelemetry Collector's file exporter writes it), at two sizes, then for
each file times `libra ingest` into a fresh store and DuckDB's `read_json`
loading the same file into a table (steps unnested), each in its own
process so peak memory is measured separately.

    python bench/ingest.py                 # 250k and 1M steps
    python bench/ingest.py --steps 200000  # a quick run
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

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
            o.write(orjson.dumps(run_to_otlp(run, f"{i + 1:032x}")) + b"\n")
            n += len(run.steps)
            if n >= steps:
                break
    return generic, otlp, n


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) not in (0,):
        raise RuntimeError(f"{cmd} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


DUCKDB_GENERIC = """
import duckdb, sys
con = duckdb.connect(sys.argv[2])
con.execute("CREATE TABLE steps AS SELECT r.run_id, unnest(r.steps, recursive := true) "
            "FROM read_json(?, format = 'newline_delimited', maximum_object_size = 1073741824) r", [sys.argv[1]])
print(con.execute("SELECT count(*) FROM steps").fetchone()[0])
"""
DUCKDB_OTLP = """
import duckdb, sys
con = duckdb.connect(sys.argv[2])
con.execute("CREATE TABLE spans AS SELECT unnest(ss.spans, recursive := true) FROM ("
            " SELECT unnest(rs.scopeSpans) AS ss FROM ("
            "  SELECT unnest(resourceSpans) AS rs FROM read_json(?, format = 'newline_delimited', "
            "  maximum_object_size = 1073741824)))", [sys.argv[1]])
print(con.execute("SELECT count(*) FROM spans").fetchone()[0])
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="*", default=[250_000, 1_000_000])
    args = ap.parse_args()
    # Loading only, like read_json: the full-text index `libra ingest` builds afterwards on
    # stores up to 50k runs is left out (`--no-index`).
    libra = [sys.executable, "-m", "libra.cli.main", "ingest", "-q", "--no-index"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        for target in args.steps:
            print(f"generating {target:,} steps …", file=sys.stderr)
            generic, otlp, n = write_files(target, tmpd)
            for label, path, script in (("generic JSONL", generic, DUCKDB_GENERIC), ("OTLP JSON", otlp, DUCKDB_OTLP)):
                db = tmpd / "libra.duckdb"
                raw_db = tmpd / "raw.duckdb"
                for p in (db, raw_db):
                    p.unlink(missing_ok=True)
                t_l, m_l = timed([*libra, "--db", str(db), str(path)])
                t_d, m_d = timed([sys.executable, "-c", script, str(path), str(raw_db)])
                size = path.stat().st_size / 1e6
                rows.append((label, n, size, t_l, n / t_l, m_l, t_d, n / t_d, m_d))
                print(f"  {label}: libra {t_l:.1f}s, duckdb {t_d:.1f}s", file=sys.stderr)
                for p in (db, raw_db):
                    p.unlink(missing_ok=True)
            generic.unlink()
            otlp.unlink()
    head = (f"{'input':<14}{'steps':>11}{'MB':>8}{'libra s':>9}{'libra steps/s':>15}{'libra MB':>10}"
            f"{'duckdb s':>10}{'duckdb steps/s':>16}{'duckdb MB':>11}{'ratio':>7}")
    print(head)
    print("-" * len(head))
    for label, n, size, t_l, r_l, m_l, t_d, r_d, m_d in rows:
        print(f"{label:<14}{n:>11,}{size:>8.0f}{t_l:>9.1f}{r_l:>15,.0f}{m_l:>10.0f}{t_d:>10.1f}{r_d:>16,.0f}"
              f"{m_d:>11.0f}{r_l / r_d:>7.2f}")
    print("\nratio = libra steps/s ÷ duckdb read_json steps/s (goal ≥ 0.33); MB = peak RSS of the process")


if __name__ == "__main__":
    main()
