"""The jobs' and verdicts' invariants for `libra check` (beside traces/check.py's).

A process killed mid-job leaves its job `running`, its claims held and its
scheduled run open; these checks find the ones whose process is gone
(traces/owner.py) and hand them back, and find verdicts of runs that are no
longer in the store.
"""

from __future__ import annotations

from datetime import UTC, datetime

from metrics.jobs.ledger import LEASE
from traces import owner
from traces.check import Check, Con


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _scores_without_run(con: Con) -> tuple[int, list[str]]:
    rows = con.execute(
        "SELECT run_id, count(*) FROM scores s WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = s.run_id) "
        "GROUP BY run_id ORDER BY run_id").fetchall()
    return sum(n for _, n in rows), [f"{n} verdicts on run {r}" for r, n in rows]


def _drop_scores_without_run(con: Con) -> None:
    for table in ("score_units", "scores"):
        con.execute(f"DELETE FROM {table} WHERE NOT EXISTS "  # noqa: S608 - Libra's own names
                    f"(SELECT 1 FROM runs r WHERE r.run_id = {table}.run_id)")


def abandoned_jobs(con: Con) -> list[tuple[str, str, str | None]]:
    """Jobs marked running whose process is gone: (job, kind, last owner)."""
    now = _now()
    return [(j, k, who) for j, k, who, beat, started in con.execute(
        "SELECT job_id, kind, owner, heartbeat_at, started_at FROM jobs WHERE status = 'running'").fetchall()
        if owner.gone(who, beat or started, LEASE, now)]


def _jobs(con: Con) -> tuple[int, list[str]]:
    rows = abandoned_jobs(con)
    return len(rows), [f"{k} job {j} (last worked on by {who or 'an unrecorded process'})" for j, k, who in rows]


def _mark_jobs(con: Con) -> None:
    for job_id, _, _ in abandoned_jobs(con):
        con.execute("UPDATE jobs SET status = 'abandoned', ended_at = ? WHERE job_id = ?", [_now(), job_id])


def _dead_claims(con: Con) -> list[tuple[str, str, str]]:
    """Claims whose process is gone: (table, job, item or partition)."""
    now = _now()
    out = [("job_items", j, k) for j, k, who, at in con.execute(
        "SELECT job_id, item_key, owner, updated_at FROM job_items WHERE status = 'claimed'").fetchall()
        if owner.gone(who, at, LEASE, now)]
    for table in ("score_partitions", "embed_partitions"):
        out += [(table, j, str(p)) for j, p, who, at in con.execute(
            f"SELECT job_id, part, worker, claimed_at FROM {table} WHERE status = 'claimed'").fetchall()  # noqa: S608
            if owner.gone(who, at, LEASE, now)]
    return out


def _claims(con: Con) -> tuple[int, list[str]]:
    rows = _dead_claims(con)
    return len(rows), [f"{t}: job {j}, {k}" for t, j, k in rows]


def _release_claims(con: Con) -> None:
    for table, job_id, key in _dead_claims(con):
        if table == "job_items":
            con.execute("UPDATE job_items SET status = 'pending', owner = NULL WHERE job_id = ? AND item_key = ?",
                        [job_id, key])
        else:
            con.execute(f"UPDATE {table} SET status = 'pending', worker = NULL, claimed_at = NULL "  # noqa: S608
                        "WHERE job_id = ? AND part = ?", [job_id, int(key)])


def _dead_schedule_runs(con: Con) -> list[tuple[int, str]]:
    # a scheduled run has no heartbeat: only one of a process known dead on this machine is abandoned
    return [(n, job) for n, job, who in con.execute(
        "SELECT run_no, job, owner FROM schedule_runs WHERE status = 'running'").fetchall()
        if owner.alive(who) is False]


def _schedule(con: Con) -> tuple[int, list[str]]:
    rows = _dead_schedule_runs(con)
    return len(rows), [f"scheduled run {n} of {job}" for n, job in rows]


def _close_schedule_runs(con: Con) -> None:
    for run_no, _ in _dead_schedule_runs(con):
        con.execute("UPDATE schedule_runs SET status = 'abandoned', ended_at = ? WHERE run_no = ?", [_now(), run_no])


CHECKS: tuple[Check, ...] = (
    Check("verdicts on runs not in the store", _scores_without_run, _drop_scores_without_run, "removed"),
    Check("jobs left running by a process that is gone", _jobs, _mark_jobs,
          "marked abandoned; `libra score` takes them over where they stopped"),
    Check("claims held by a process that is gone", _claims, _release_claims, "given back to be done again"),
    Check("scheduled runs left open by a scheduler that is gone", _schedule, _close_schedule_runs,
          "marked abandoned"),
)
