"""A folder of many one-run files: `libra ingest` beside DuckDB's `read_json` over the same glob, in one run.

Writes N demo runs, one Libra generic JSON file each, then times `libra ingest`
of the folder into a fresh store and DuckDB loading the same glob into a table
(run id and steps as a JSON column: schema detection over every file with
`union_by_name` runs out of memory at 100k files here), each in its own
process. Prints files per second, CPU seconds of each process tree, and that
every run landed.

    python bench/small_files.py                 # 100k files
    python bench/small_files.py --files 20000   # a quick run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import timed  # noqa: E402
from libra.demo import generate_runs  # noqa: E402
from traces.importers.generic import run_to_record  # noqa: E402

GLOB_LOAD = """
import duckdb, sys
con = duckdb.connect(sys.argv[2])
con.execute("SET enable_progress_bar = false")
con.execute("CREATE TABLE runs AS SELECT * FROM read_json(?, format = 'auto', maximum_object_size = 1073741824, "
            "columns = {'run_id': 'VARCHAR', 'steps': 'JSON'})", [sys.argv[1]])
print(con.execute("SELECT count(*) FROM runs").fetchone()[0])
"""
RUNS_STORED = """
import duckdb, sys
print(duckdb.connect(sys.argv[1], read_only=True).execute("SELECT count(*) FROM runs").fetchone()[0])
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "runs"
        folder.mkdir()
        print(f"writing {a.files:,} files …", file=sys.stderr)
        for i, run in enumerate(generate_runs(a.files, seed=5, with_feedback=False)):
            (folder / f"r{i:07d}.json").write_bytes(orjson.dumps(run_to_record(run), default=str))
        db, raw = Path(tmp) / "libra.duckdb", Path(tmp) / "raw.duckdb"
        w_l, c_l, _, _ = timed([sys.executable, "-m", "libra.cli.main", "ingest", "-q", "--no-index",
                             "--db", str(db), str(folder)])
        stored = int(timed([sys.executable, "-c", RUNS_STORED, str(db)])[3].split()[-1])
        w_d, c_d, _, out = timed([sys.executable, "-c", GLOB_LOAD, str(folder / "*.json"), str(raw)])
        loaded = out.split()[-1]
    print(f"{'loader':<34}{'files':>9}{'landed':>9}{'wall s':>8}{'CPU s':>8}{'files/s':>9}")
    print(f"{'libra ingest (folder)':<34}{a.files:>9,}{stored:>9,}{w_l:>8.1f}{c_l:>8.1f}{a.files / w_l:>9,.0f}")
    print(f"{'read_json over the glob':<34}{a.files:>9,}{int(loaded):>9,}{w_d:>8.1f}{c_d:>8.1f}{a.files / w_d:>9,.0f}")
    print(f"Libra {a.files / w_l:,.0f} files/s (goal ≥ 1,000: {'met' if a.files / w_l >= 1000 else 'NOT met'}); "
          f"read_json needs {c_d / c_l:.2f} of Libra's CPU and {w_d / w_l:.2f} of its wall time")


if __name__ == "__main__":
    main()
