"""The schema: migrations recorded and applied on open, and DDL nowhere else."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from traces import migrate, schema

from traces import locks
from traces.store import Store, _connect_lake

EXPECTED = {
    "runs": {"run_id", "native_id", "source", "format", "agent", "model", "task", "started_at",
             "ended_at", "outcome", "reward", "gold", "metadata", "content_hash", "n_steps",
             "ingested_at"},
    "steps": {"run_id", "idx", "kind", "actor", "tool_name", "tool_args", "content", "span_id",
              "parent_id", "started_at", "ended_at", "input_tokens", "output_tokens", "is_error",
              "metadata"},
    "feedback": {"feedback_id", "run_id", "steps", "author", "text", "rating", "origin",
                 "created_at", "edited_at", "deleted_at", "metadata"},
    "quarantine": {"id", "source", "format", "line", "byte_offset", "field", "reason", "raw",
                   "records", "ingested_at"},
    "llm_calls": {"call_id", "job_id", "item_key", "purpose", "model", "request_hash", "status", "error",
                  "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                  "cost_usd", "latency_ms", "attempts", "batch", "created_at"},
    "llm_cache": {"request_hash", "model", "purpose", "response", "created_at"},
    "embeddings": {"model", "content_hash", "vector", "created_at"},
    "jobs": {"job_id", "kind", "params_hash", "params", "status", "max_cost", "cost_usd", "items_total",
             "items_done", "items_failed", "error", "started_at", "ended_at"},
    "job_items": {"job_id", "item_key", "status", "error", "updated_at"},
    "aspects": {"aspect_id", "feedback_id", "run_id", "backend", "idx", "bullet", "behaviour", "sign", "steps",
                "steps_given", "focus", "metadata", "created_at"},
    "metric_sets": {"set_id", "version", "name", "status", "backend", "provenance", "created_at", "created_by",
                    "approved_by", "approved_at", "note"},
    "metric_defs": {"set_id", "version", "position", "metric_id", "name", "explanation", "good", "bad", "scope",
                    "kind", "metadata"},
    "users": {"username", "display_name", "email", "role", "password_hash", "disabled", "created_at"},
    "feedback_history": {"feedback_id", "revision", "action", "text", "rating", "steps", "edited_by", "edited_at"},
    "queues": {"queue_id", "name", "k", "filter", "created_by", "created_at", "closed"},
    "queue_items": {"queue_id", "run_id", "position"},
    "queue_assignments": {"queue_id", "run_id", "username", "status", "assigned_at", "done_at"},
    "run_text": {"run_id", "text"},
    "scores": {"run_id", "metric_set_id", "metric_set_version", "metric_id", "value", "evidence", "reason",
               "confidence", "backend", "backend_version", "job_id", "created_at"},
    "embed_partitions": {"job_id", "part", "model", "run_ids", "status", "worker", "claimed_at", "done_at",
                         "n_texts", "n_embedded", "error"},
    "model_files": {"model_id", "archive", "sha256", "bytes"},
    **{f"lock_{name}": {"n"} for name in schema.LOCKS},
}


def columns(con, table):
    return {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()}


@pytest.fixture
def bare(request, backend, tmp_path):
    """Makes (location, raw connection opener) of stores nothing has migrated yet."""
    def make(name: str):
        if backend == "lake":
            loc = request.getfixturevalue("pg").new_lake(migrated=False)
            return loc, lambda: _connect_lake(loc)
        loc = str(tmp_path / f"{name}.duckdb")
        return loc, lambda: duckdb.connect(loc)
    return make


def test_fresh_store_has_full_schema_and_records_every_migration(bare):
    loc, _ = bare("a")
    s = Store(loc)
    with s.connection() as con:
        for table, cols in EXPECTED.items():
            assert cols <= columns(con, table), table
        rows = con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [v for v, _ in rows] == [m.version for m in schema.MIGRATIONS]
    assert s.schema_version() == schema.LATEST
    s.close()


def test_reopening_applies_nothing_twice(bare, backend):
    loc, raw = bare("a")
    s = Store(loc)
    s.counts()
    s.close()
    con = raw()
    assert migrate.migrate(con, lake=backend == "lake") == []
    assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(schema.MIGRATIONS)
    con.close()


def test_old_store_is_upgraded_on_open(bare, backend):
    loc, raw = bare("old")
    con = raw()
    migrate.migrate(con, target=schema.LATEST - 1, lake=backend == "lake")
    assert migrate.current_version(con) == schema.LATEST - 1
    con.close()
    assert Store(loc).schema_version() == schema.LATEST


def test_store_from_a_newer_libra_is_refused(bare):
    loc, raw = bare("new")
    con = raw()
    migrate.migrate(con)
    con.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', now())", [schema.LATEST + 1])
    con.close()
    with pytest.raises(migrate.SchemaTooNew, match="newer than this Libra"):
        Store(loc).counts()


def test_a_process_checks_migrations_once_per_store_and_again_in_a_new_process(tmp_path, monkeypatch):
    import subprocess
    import sys

    calls = []
    real = migrate.migrate
    monkeypatch.setattr(migrate, "migrate", lambda con, *a, **k: calls.append(1) or real(con, *a, **k))
    loc = str(tmp_path / "once.duckdb")
    for _ in range(5):
        Store(loc).counts()
    assert len(calls) == 1
    con = duckdb.connect(loc)
    con.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', now())", [schema.LATEST + 1])
    con.close()
    # a new process checks again, and refuses the store a newer Libra has upgraded
    proc = subprocess.run([sys.executable, "-c", f"from traces.store import Store; Store({loc!r}).counts()"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "newer than this Libra" in proc.stderr
    # and a store deleted and made again at the same path is checked (and migrated) again
    (tmp_path / "again.duckdb").unlink(missing_ok=True)
    Store(str(tmp_path / "again.duckdb")).counts()
    (tmp_path / "again.duckdb").unlink()
    assert Store(str(tmp_path / "again.duckdb")).counts()["runs"] == 0


def test_failed_migration_leaves_no_trace(bare, backend, monkeypatch):
    bad = schema.Migration(schema.LATEST + 1, "broken", ("CREATE TABLE half_done (a INT)", "NOT SQL"))
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS + (bad,))
    monkeypatch.setattr(schema, "LATEST", bad.version)
    _, raw = bare("x")
    con = raw()
    with pytest.raises(duckdb.Error):
        migrate.migrate(con, lake=backend == "lake")
    assert migrate.current_version(con) == bad.version - 1
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'half_done'"
                       ).fetchone()[0] == 0


DDL = re.compile(r"\b(CREATE|ALTER|DROP)\s+(TABLE|INDEX|SEQUENCE|VIEW|SCHEMA)\b", re.IGNORECASE)


def test_no_module_but_schema_writes_ddl():
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for py in root.rglob("*.py"):
        rel = py.relative_to(root)
        if rel.parts[0] in (".venv", "tests", "bench", "build", "artifacts") or rel == Path("traces/schema.py"):
            continue
        if DDL.search(py.read_text()):
            offenders.append(str(rel))
    assert offenders == []


def test_every_upserted_table_has_a_lock_for_the_lake():
    """merge() serialises writers on a lake through the table's lock; a new table needs one."""
    root = Path(__file__).resolve().parents[1]
    targets = set()
    for py in root.rglob("*.py"):
        rel = py.relative_to(root)
        if rel.parts[0] in (".venv", "tests", "bench", "build", "artifacts"):
            continue
        targets |= set(re.findall(r'\bmerge\(\s*con,\s*"(\w+)"', py.read_text()))
    assert {"feedback", "scores", "embeddings"} <= targets
    assert targets <= set(schema.LOCKS), targets - set(schema.LOCKS)
    with pytest.raises(ValueError, match="no lock table"):
        locks.lock_statement("runs; DROP TABLE runs")
