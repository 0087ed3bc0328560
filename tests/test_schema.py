"""The schema: migrations recorded and applied on open, and DDL nowhere else."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from traces import migrate, schema

from traces import locks
from traces.ducklake import connect_lake
from traces.store import Store

pytestmark = pytest.mark.contract  # migrations on both backends in every tier

EXPECTED = {
    "alerts": {"alert_id": "VARCHAR", "rule": "VARCHAR", "metric_set_id": "VARCHAR", "metric_id": "VARCHAR",
        "agent": "VARCHAR", "value": "DOUBLE", "threshold": "DOUBLE", "runs": "INTEGER",
        "window_start": "TIMESTAMP", "raised_at": "TIMESTAMP", "cleared_at": "TIMESTAMP", "job": "VARCHAR"},
    "aspects": {"aspect_id": "VARCHAR", "feedback_id": "VARCHAR", "run_id": "VARCHAR", "backend": "VARCHAR",
        "idx": "INTEGER", "bullet": "VARCHAR", "behaviour": "VARCHAR", "sign": "TINYINT",
        "steps": "INTEGER[]", "steps_given": "BOOLEAN", "focus": "VARCHAR", "metadata": "JSON",
        "created_at": "TIMESTAMP"},
    "embed_partitions": {"job_id": "VARCHAR", "part": "INTEGER", "model": "VARCHAR", "run_ids": "VARCHAR[]",
        "status": "VARCHAR", "worker": "VARCHAR", "claimed_at": "TIMESTAMP", "done_at": "TIMESTAMP",
        "n_texts": "INTEGER", "n_embedded": "INTEGER", "error": "VARCHAR"},
    "embeddings": {"model": "VARCHAR", "content_hash": "VARCHAR", "vector": "FLOAT[]",
        "created_at": "TIMESTAMP"},
    "feedback": {"feedback_id": "VARCHAR", "run_id": "VARCHAR", "steps": "INTEGER[]", "author": "VARCHAR",
        "text": "VARCHAR", "rating": "DOUBLE", "origin": "VARCHAR", "created_at": "TIMESTAMP",
        "edited_at": "TIMESTAMP", "deleted_at": "TIMESTAMP", "metadata": "JSON"},
    "feedback_history": {"feedback_id": "VARCHAR", "revision": "INTEGER", "action": "VARCHAR",
        "text": "VARCHAR", "rating": "DOUBLE", "steps": "INTEGER[]", "edited_by": "VARCHAR",
        "edited_at": "TIMESTAMP"},
    "ingest_files": {"source": "VARCHAR", "format": "VARCHAR", "encoding": "VARCHAR", "records": "BIGINT",
        "stored": "BIGINT", "quarantined": "BIGINT", "ingested_at": "TIMESTAMP"},
    "ingest_intents": {"intent_id": "VARCHAR", "owner": "VARCHAR", "run_ids": "VARCHAR[]", "steps": "BIGINT",
        "started_at": "TIMESTAMP"},
    "job_items": {"job_id": "VARCHAR", "item_key": "VARCHAR", "status": "VARCHAR", "error": "VARCHAR",
        "updated_at": "TIMESTAMP", "owner": "VARCHAR"},
    "jobs": {"job_id": "VARCHAR", "kind": "VARCHAR", "params_hash": "VARCHAR", "params": "JSON",
        "status": "VARCHAR", "max_cost": "DOUBLE", "cost_usd": "DOUBLE", "items_total": "INTEGER",
        "items_done": "INTEGER", "items_failed": "INTEGER", "error": "VARCHAR", "started_at": "TIMESTAMP",
        "ended_at": "TIMESTAMP", "owner": "VARCHAR", "heartbeat_at": "TIMESTAMP"},
    "llm_cache": {"request_hash": "VARCHAR", "model": "VARCHAR", "purpose": "VARCHAR", "response": "JSON",
        "created_at": "TIMESTAMP"},
    "llm_calls": {"call_id": "VARCHAR", "job_id": "VARCHAR", "item_key": "VARCHAR", "purpose": "VARCHAR",
        "model": "VARCHAR", "request_hash": "VARCHAR", "status": "VARCHAR", "error": "VARCHAR",
        "input_tokens": "BIGINT", "output_tokens": "BIGINT", "cache_creation_input_tokens": "BIGINT",
        "cache_read_input_tokens": "BIGINT", "cost_usd": "DOUBLE", "latency_ms": "DOUBLE",
        "attempts": "INTEGER", "batch": "BOOLEAN", "created_at": "TIMESTAMP"},
    "metric_defs": {"set_id": "VARCHAR", "version": "INTEGER", "position": "INTEGER", "metric_id": "VARCHAR",
        "name": "VARCHAR", "explanation": "VARCHAR", "good": "JSON", "bad": "JSON", "scope": "VARCHAR",
        "kind": "VARCHAR", "metadata": "JSON", "subject": "VARCHAR"},
    "metric_sets": {"set_id": "VARCHAR", "version": "INTEGER", "name": "VARCHAR", "status": "VARCHAR",
        "backend": "VARCHAR", "provenance": "JSON", "created_at": "TIMESTAMP", "created_by": "VARCHAR",
        "approved_by": "VARCHAR", "approved_at": "TIMESTAMP", "note": "VARCHAR"},
    "model_files": {"model_id": "VARCHAR", "archive": "BLOB", "sha256": "VARCHAR", "bytes": "BIGINT"},
    "quarantine": {"id": "BIGINT", "source": "VARCHAR", "format": "VARCHAR", "line": "BIGINT",
        "byte_offset": "BIGINT", "field": "VARCHAR", "reason": "VARCHAR", "raw": "VARCHAR",
        "records": "INTEGER", "ingested_at": "TIMESTAMP"},
    "queue_assignments": {"queue_id": "VARCHAR", "run_id": "VARCHAR", "username": "VARCHAR",
        "status": "VARCHAR", "assigned_at": "TIMESTAMP", "done_at": "TIMESTAMP"},
    "queue_items": {"queue_id": "VARCHAR", "run_id": "VARCHAR", "position": "INTEGER"},
    "queues": {"queue_id": "VARCHAR", "name": "VARCHAR", "k": "INTEGER", "filter": "JSON",
        "created_by": "VARCHAR", "created_at": "TIMESTAMP", "closed": "BOOLEAN", "kind": "VARCHAR"},
    "reward_models": {"model_id": "VARCHAR", "name": "VARCHAR", "version": "INTEGER", "kind": "VARCHAR",
        "data_hash": "VARCHAR", "params": "JSON", "metrics": "JSON", "path": "VARCHAR",
        "created_at": "TIMESTAMP"},
    "run_text": {"run_id": "VARCHAR", "text": "VARCHAR"},
    "runs": {"run_id": "VARCHAR", "native_id": "VARCHAR", "source": "VARCHAR", "format": "VARCHAR",
        "agent": "VARCHAR", "model": "VARCHAR", "task": "VARCHAR", "started_at": "TIMESTAMP",
        "ended_at": "TIMESTAMP", "outcome": "VARCHAR", "reward": "DOUBLE", "gold": "JSON",
        "metadata": "JSON", "content_hash": "VARCHAR", "n_steps": "INTEGER", "ingested_at": "TIMESTAMP"},
    "schedule_runs": {"run_no": "BIGINT", "job": "VARCHAR", "action": "VARCHAR", "started_at": "TIMESTAMP",
        "ended_at": "TIMESTAMP", "status": "VARCHAR", "runs_ingested": "INTEGER", "runs_scored": "INTEGER",
        "cost_usd": "DOUBLE", "alerts": "INTEGER", "errors": "VARCHAR", "detail": "JSON",
        "owner": "VARCHAR"},
    "schema_migrations": {"version": "INTEGER", "name": "VARCHAR", "applied_at": "TIMESTAMP"},
    "score_partitions": {"job_id": "VARCHAR", "part": "INTEGER", "run_ids": "VARCHAR[]",
        "metric_set_id": "VARCHAR", "metric_set_version": "INTEGER", "backend": "VARCHAR",
        "status": "VARCHAR", "worker": "VARCHAR", "claimed_at": "TIMESTAMP", "done_at": "TIMESTAMP",
        "n_scored": "INTEGER", "n_failed": "INTEGER", "error": "VARCHAR"},
    "score_units": {"run_id": "VARCHAR", "metric_set_id": "VARCHAR", "metric_set_version": "INTEGER",
        "metric_id": "VARCHAR", "backend": "VARCHAR", "focus": "VARCHAR", "unit": "INTEGER", "value": "TINYINT",
        "reason": "VARCHAR"},
    "scores": {"run_id": "VARCHAR", "metric_set_id": "VARCHAR", "metric_set_version": "INTEGER",
        "metric_id": "VARCHAR", "focus": "VARCHAR", "value": "TINYINT", "evidence": "INTEGER[]", "reason": "VARCHAR",
        "confidence": "DOUBLE", "backend": "VARCHAR", "backend_version": "VARCHAR", "job_id": "VARCHAR",
        "created_at": "TIMESTAMP", "rate": "DOUBLE", "agent": "VARCHAR", "run_at": "TIMESTAMP"},
    "step_locators": {"version": "INTEGER", "weights": "JSON", "report": "JSON", "embedder": "VARCHAR",
        "examples": "INTEGER", "created_at": "TIMESTAMP", "created_by": "VARCHAR", "chosen": "BOOLEAN"},
    "steps": {"run_id": "VARCHAR", "idx": "INTEGER", "kind": "VARCHAR", "actor": "VARCHAR",
        "tool_name": "VARCHAR", "tool_args": "JSON", "content": "VARCHAR", "span_id": "VARCHAR",
        "parent_id": "VARCHAR", "started_at": "TIMESTAMP", "ended_at": "TIMESTAMP", "input_tokens": "BIGINT",
        "output_tokens": "BIGINT", "is_error": "BOOLEAN", "metadata": "JSON"},
    "users": {"username": "VARCHAR", "display_name": "VARCHAR", "email": "VARCHAR", "role": "VARCHAR",
        "password_hash": "VARCHAR", "disabled": "BOOLEAN", "created_at": "TIMESTAMP"},
    "otlp_spans": {"trace_id": "VARCHAR", "span_id": "VARCHAR", "payload": "JSON", "received_at": "TIMESTAMP"},
    "otlp_logs": {"trace_id": "VARCHAR", "log_id": "VARCHAR", "span_id": "VARCHAR", "payload": "JSON",
        "received_at": "TIMESTAMP"},
    "app_sessions": {"session_id": "VARCHAR", "username": "VARCHAR", "issued_at": "TIMESTAMP",
        "expires_at": "TIMESTAMP", "revoked_at": "TIMESTAMP"},
    "watch_files": {"file_key": "VARCHAR", "path": "VARCHAR", "committed": "BIGINT", "head": "VARCHAR",
        "done_traces": "JSON", "updated_at": "TIMESTAMP"},
    "feedback_coverage": {"set_id": "VARCHAR", "version": "INTEGER", "measured_at": "TIMESTAMP",
        "week": "TIMESTAMP", "remarks": "INTEGER", "covered": "INTEGER", "job": "VARCHAR"},
    "preferences": {"pref_id": "VARCHAR", "pair_id": "VARCHAR", "run_a": "VARCHAR", "run_b": "VARCHAR",
        "author": "VARCHAR", "choice": "VARCHAR", "reason": "VARCHAR", "steps_a": "INTEGER[]",
        "steps_b": "INTEGER[]", "queue_id": "VARCHAR", "feedback_id": "VARCHAR", "created_at": "TIMESTAMP"},
    "queue_pairs": {"queue_id": "VARCHAR", "pair_id": "VARCHAR", "run_a": "VARCHAR", "run_b": "VARCHAR"},
    **{f"lock_{name}": {"n": "BIGINT"} for name in schema.LOCKS},
}


def schema_of(con) -> dict[str, dict[str, str]]:
    """{table: {column: type}} of the store's own tables, in column order."""
    out: dict[str, dict[str, str]] = {}
    for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_catalog = current_database() "
            "ORDER BY table_name, ordinal_position").fetchall():
        out.setdefault(table, {})[column] = kind
    return out


@pytest.fixture
def bare(request, backend, tmp_path):
    """Makes (location, raw connection opener) of stores nothing has migrated yet."""
    def make(name: str):
        if backend == "lake":
            loc = request.getfixturevalue("pg").new_lake(migrated=False)
            return loc, lambda: connect_lake(loc)
        loc = str(tmp_path / f"{name}.duckdb")
        return loc, lambda: duckdb.connect(loc)
    return make


def test_fresh_store_has_full_schema_and_records_every_migration(bare):
    loc, _ = bare("a")
    s = Store(loc)
    with s.connection() as con:
        got = schema_of(con)
        rows = con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [v for v, _ in rows] == [m.version for m in schema.MIGRATIONS]
    assert s.schema_version() == schema.LATEST
    # every table, column and type, the same on both backends: a migration that changes one says so here
    assert got.keys() == {*EXPECTED, "schema_migrations"}
    for table, cols in EXPECTED.items():
        assert got[table] == cols, table
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


def test_verdicts_from_before_subjects_survive_the_rebuild_and_a_second_agent_can_be_scored(bare, backend):
    """Migration 13 rebuilds scores with focus in its key: old verdicts are kept as verdicts on the run."""
    loc, raw = bare("v12")
    con = raw()
    migrate.migrate(con, target=12, lake=backend == "lake")
    con.execute("INSERT INTO scores (run_id, metric_set_id, metric_set_version, metric_id, value, evidence, reason, "
                "backend, backend_version, created_at, agent) VALUES ('r1', 'set', 1, 'm', -1, [2], 'old', "
                "'offline', '1', now(), 'bot')")
    con.execute("INSERT INTO score_units VALUES ('r1', 'set', 1, 'm', 'offline', 0, 1, 'unit')")
    con.close()
    s = Store(loc)
    assert s.execute("SELECT run_id, focus, value, evidence, reason, agent FROM scores") == [
        ("r1", "", -1, [2], "old", "bot")]
    assert s.execute("SELECT focus, unit, value FROM score_units") == [("", 0, 1)]
    from metrics.scoring import SCORE_COLS, insert_verdicts
    row = dict.fromkeys(SCORE_COLS) | {"run_id": "r1", "metric_set_id": "set", "metric_set_version": 1,
                                       "metric_id": "m", "backend": "offline", "value": 1, "evidence": [],
                                       "backend_version": "1", "created_at": datetime.now(UTC).replace(tzinfo=None)}
    s.write(lambda c: insert_verdicts(c, [[(row | {"focus": f})[k] for k in SCORE_COLS] for f in ("Ann", "Bo")],
                                      []))
    assert s.execute("SELECT focus, value FROM scores ORDER BY focus") == [("", -1), ("Ann", 1), ("Bo", 1)]
    s.close()


def test_store_from_a_newer_libra_is_refused(bare, backend):
    loc, raw = bare("new")
    con = raw()
    migrate.migrate(con, lake=backend == "lake")
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


def test_making_a_store_object_keeps_this_processs_lock_on_an_open_file(tmp_path):
    """Closing any descriptor of a file drops a process's POSIX locks on it, DuckDB's included.

    Checking a store file's first bytes while this process had it open let another
    process open the same file at once; two processes then wrote one file (a scoring
    job beside annotators crashed with "invalid fsst_symbol_table_offset" and a
    segmentation fault).
    """
    import subprocess
    import sys

    path = str(tmp_path / "held.duckdb")
    held = Store(path)
    probe = ("import sys, duckdb\n"
             "try:\n    duckdb.connect(sys.argv[1]).close(); print('opened')\n"
             "except duckdb.IOException as e:\n    print('locked' if 'lock' in str(e).lower() else repr(e))\n")
    with held.hold():
        Store(path)  # another handle on the same store, made while the file is open here
        got = subprocess.run([sys.executable, "-c", probe, path], capture_output=True, text=True).stdout.strip()
    assert got == "locked", "another process could open the store while this one had it open"
