"""Full-text search over run content: DuckDB's BM25 index, rebuilt on demand."""

from __future__ import annotations

import duckdb

from traces import extensions
from traces.locks import on_lake
from traces.schema import RUN_TEXT


def load_fts(con: duckdb.DuckDBPyConnection) -> bool:
    return extensions.load(con, "fts", required=False)


def rebuild_search_index(con: duckdb.DuckDBPyConnection) -> bool:
    """(Re)build run_text and its BM25 index; DuckDB's FTS index is not maintained on insert.

    False where there is none to build: the fts extension is missing, or the store
    is a lake (DuckLake tables take no index; search there matches substrings).
    """
    if on_lake(con) or not load_fts(con):
        return False
    # The indexed text is gathered here rather than on every ingest: it is a copy of the
    # steps' text, which made writing runs a quarter slower and the file a third bigger.
    con.execute("DELETE FROM run_text")
    con.execute("INSERT INTO run_text " + RUN_TEXT)
    con.execute("PRAGMA create_fts_index('run_text', 'run_id', 'text', overwrite = 1)")
    return True


def unindexed_runs(con: duckdb.DuckDBPyConnection) -> int:
    """Runs written (or replaced) since the index was last built: search matches them by their words."""
    return int(con.execute("SELECT count(*) FROM runs r WHERE NOT EXISTS "
                           "(SELECT 1 FROM run_text t WHERE t.run_id = r.run_id)").fetchone()[0])
