"""Crash recovery for ingest: a run and its steps are visible together or not at all.

Libra writes a batch's runs, steps and feedback in one transaction, but a
transaction is only as atomic as the engine's recovery. DuckDB 1.5.5 writes a
large transaction's row groups to the database file before it commits and
logs pointers to them; a process killed while that log entry is half written
comes back with the steps and without the runs (tests/test_duckdb_recovery.py
shows it on plain DuckDB). So Libra does not rely on it:

- before a batch, an *intent* naming its runs is committed on its own
  (`begin`), and it is removed after the batch commits (`end`);
- an intent whose owner is dead (traces/owner.py) names the only runs a
  crash can have left half written; `recover` repairs exactly those: steps
  and imported feedback with no run are removed, a run whose steps do not add
  up to its `n_steps` is removed with them, so ingesting the file again adds
  it whole. It runs when a process first opens the store and before every
  ingest, before anything is written.

`repair_runs` over the whole store is what `libra check --repair` uses.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from traces import owner

log = logging.getLogger("libra.recovery")

# Another host's intent is presumed dead after this long: a batch commits in seconds.
INTENT_LEASE = timedelta(hours=1)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def begin(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str], steps: int) -> str:
    """Record (and let the caller commit) that a batch of these runs is about to be written."""
    intent_id = uuid.uuid4().hex
    con.execute("INSERT INTO ingest_intents (intent_id, owner, run_ids, steps, started_at) VALUES (?, ?, ?, ?, ?)",
                [intent_id, owner.current(), list(run_ids), steps, _now()])
    return intent_id


def end(con: duckdb.DuckDBPyConnection, intent_id: str) -> None:
    con.execute("DELETE FROM ingest_intents WHERE intent_id = ?", [intent_id])


def stale_intents(con: duckdb.DuckDBPyConnection) -> list[tuple[str, list[str]]]:
    """Intents of processes that are gone: (intent id, the runs it names)."""
    now = _now()
    rows = con.execute("SELECT intent_id, owner, run_ids, started_at FROM ingest_intents").fetchall()
    return [(i, list(ids)) for i, who, ids, at in rows if owner.gone(who, at, INTENT_LEASE, now)]


def _ids_clause(column: str, ids: Sequence[str] | None) -> tuple[str, list[Any]]:
    if ids is None:
        return "", []
    return f" AND {column} IN (SELECT unnest(?::VARCHAR[]))", [list(ids)]


# A run is whole when its steps are exactly idx 0 .. n_steps-1, once each.
_BROKEN = (
    "SELECT r.run_id, r.n_steps, count(s.idx), count(DISTINCT s.idx) FROM runs r "
    "LEFT JOIN steps s ON s.run_id = r.run_id WHERE true{where} GROUP BY r.run_id, r.n_steps "
    "HAVING count(s.idx) != r.n_steps OR count(DISTINCT s.idx) != count(s.idx) "
    "OR coalesce(min(s.idx), 0) != 0 OR coalesce(max(s.idx), -1) != r.n_steps - 1"
)


def broken_runs(con: duckdb.DuckDBPyConnection, ids: Sequence[str] | None = None) -> list[tuple[str, int, int, int]]:
    """Runs whose steps do not add up: (run, n_steps, steps stored, distinct positions)."""
    where, params = _ids_clause("r.run_id", ids)
    return con.execute(_BROKEN.format(where=where), params).fetchall()


def orphan_counts(con: duckdb.DuckDBPyConnection, ids: Sequence[str] | None = None) -> dict[str, int]:
    """Rows that belong to no run: steps, imported feedback, search text."""
    out = {}
    for name, table, extra in (("orphan steps", "steps", ""),
                               ("orphan imported feedback", "feedback", " AND x.origin = 'imported'"),
                               ("orphan search text", "run_text", "")):
        where, params = _ids_clause("x.run_id", ids)
        out[name] = con.execute(
            f"SELECT count(*) FROM {table} x WHERE NOT EXISTS "  # noqa: S608 - Libra's own names
            f"(SELECT 1 FROM runs r WHERE r.run_id = x.run_id){extra}{where}", params).fetchone()[0]
    return out


def remove_runs(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> None:
    """Remove runs whole, in the caller's transaction: steps, imported feedback, search text, the run.

    Notes people wrote stay; they come back into view when the run is ingested again.
    """
    if not ids:
        return
    for sql in ("DELETE FROM steps WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
                "DELETE FROM feedback WHERE origin = 'imported' AND run_id IN (SELECT unnest(?::VARCHAR[]))",
                "DELETE FROM run_text WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
                "DELETE FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))"):
        con.execute(sql, [list(ids)])


def repair_runs(con: duckdb.DuckDBPyConnection, ids: Sequence[str] | None = None) -> dict[str, int]:
    """Remove what a torn commit left, in the caller's transaction; counts of what went.

    Only runs named in `ids` (all runs when None). A broken run is removed whole
    with its imported feedback; notes people wrote are never removed, and wait
    for the run to be ingested again.
    """
    broken = [r for r, *_ in broken_runs(con, ids)]
    remove_runs(con, broken)
    counts = orphan_counts(con, ids)
    for table, extra in (("steps", ""), ("feedback", " AND origin = 'imported'"), ("run_text", "")):
        where, params = _ids_clause(f"{table}.run_id", ids)
        con.execute(f"DELETE FROM {table} WHERE NOT EXISTS "  # noqa: S608 - Libra's own names
                    f"(SELECT 1 FROM runs r WHERE r.run_id = {table}.run_id){extra}{where}", params)
    return {"broken runs removed": len(broken), **{k: v for k, v in counts.items() if v}}


def recover(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Repair the runs of every intent whose process is gone; counts of what was removed.

    `con` is a connection outside any transaction; each intent is repaired and
    dropped in one transaction of its own.
    """
    done: dict[str, int] = {}
    for intent_id, ids in stale_intents(con):
        con.execute("BEGIN TRANSACTION")
        try:
            for k, v in repair_runs(con, ids).items():
                done[k] = done.get(k, 0) + v
            end(con, intent_id)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        log.warning("an ingest killed while it committed left %d runs to repair: %s", len(ids),
                    ", ".join(f"{k} {v}" for k, v in done.items()) or "nothing was half visible")
    return done
