"""The store's invariants about traces, found and (where no guess is needed) repaired.

`libra check` runs these beside the jobs' (metrics/jobs/health.py). Each
check is a `Check`: how to count its problem, a few examples, and, when the
fix needs no guess, how to repair it inside a transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb

from traces import recovery, schema

Con = duckdb.DuckDBPyConnection


@dataclass(frozen=True)
class Finding:
    """One kind of problem: how many, a few examples, and what repairing it does (None: left to a person)."""

    name: str
    count: int
    examples: tuple[str, ...] = ()
    repair: str | None = None
    advice: str = ""


@dataclass(frozen=True)
class Check:
    name: str
    find: Callable[[Con], tuple[int, list[str]]]
    repair: Callable[[Con], None] | None = None
    repair_says: str | None = None
    advice: str = ""
    examples: int = field(default=5)

    def run(self, con: Con) -> Finding:
        n, ex = self.find(con)
        return Finding(self.name, n, tuple(ex[:self.examples]), self.repair_says if self.repair else None, self.advice)


def _migrations(con: Con) -> tuple[int, list[str]]:
    have = {v for v, in con.execute("SELECT version FROM schema_migrations").fetchall()}
    missing = [m for m in schema.MIGRATIONS if m.version not in have]
    unknown = sorted(v for v in have if v > schema.LATEST)
    return len(missing) + len(unknown), [f"migration {m.version} ({m.name}) not applied" for m in missing] + \
        [f"migration {v} is from a newer Libra" for v in unknown]


def _stale_intents(con: Con) -> tuple[int, list[str]]:
    stale = recovery.stale_intents(con)
    return len(stale), [f"intent {i}: {len(ids)} runs" for i, ids in stale]


def _repair_intents(con: Con) -> None:
    for intent_id, ids in recovery.stale_intents(con):
        recovery.repair_runs(con, ids)
        recovery.end(con, intent_id)


def _broken(con: Con) -> tuple[int, list[str]]:
    rows = recovery.broken_runs(con)
    return len(rows), [f"{r}: n_steps {n}, {got} steps stored at {distinct} positions" for r, n, got, distinct in rows]


def _orphans(kind: str) -> Callable[[Con], tuple[int, list[str]]]:
    def find(con: Con) -> tuple[int, list[str]]:
        return recovery.orphan_counts(con)[kind], []
    return find


def _repair_orphans(con: Con) -> None:
    recovery.repair_runs(con, None)


def _notes_without_run(con: Con) -> tuple[int, list[str]]:
    rows = con.execute(
        "SELECT feedback_id, run_id FROM feedback f WHERE origin != 'imported' AND deleted_at IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = f.run_id) ORDER BY created_at").fetchall()
    return len(rows), [f"note {f} on run {r}" for f, r in rows]


def anchors_past_end(con: Con) -> list[tuple[str, str, list[int], int]]:
    """Notes anchored to steps a run no longer has: (note, run, the missing steps, the run's n_steps)."""
    rows = con.execute(
        "SELECT f.feedback_id, f.run_id, list_filter(f.steps, s -> s >= r.n_steps OR s < 0), r.n_steps "
        "FROM feedback f JOIN runs r ON r.run_id = f.run_id WHERE f.deleted_at IS NULL "
        "AND len(list_filter(coalesce(f.steps, []), s -> s >= r.n_steps OR s < 0)) > 0 "
        "ORDER BY f.created_at").fetchall()
    return [(f, r, list(s), n) for f, r, s, n in rows]


def _anchors(con: Con) -> tuple[int, list[str]]:
    rows = anchors_past_end(con)
    return len(rows), [f"note {f} on run {r}: steps {s} (the run has {n})" for f, r, s, n in rows]


CHECKS: tuple[Check, ...] = (
    Check("migrations", _migrations, advice="open the store with the Libra that made it, or a newer one"),
    Check("ingest left unfinished by a process that is gone", _stale_intents, _repair_intents,
          "repaired the runs it names (what a killed commit left half visible is removed)"),
    Check("runs whose steps do not add up to n_steps", _broken, _repair_orphans,
          "removed the run, its steps and imported feedback; ingest its file again to restore it"),
    Check("steps of no run", _orphans("orphan steps"), _repair_orphans, "removed"),
    Check("imported feedback of no run", _orphans("orphan imported feedback"), _repair_orphans, "removed"),
    Check("search text of no run", _orphans("orphan search text"), _repair_orphans, "removed"),
    Check("people's notes on runs not in the store", _notes_without_run,
          advice="kept: ingest the run again and they show on it"),
    Check("notes anchored past a run's last step", _anchors,
          advice="kept and flagged on the run view: the run was ingested again in a shorter version"),
)
