"""`libra check` finds every broken invariant, `--repair` fixes what needs no guess, and a
job whose process died is seen as abandoned and taken over where it stopped."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

import libra
from metrics import sets
from metrics.jobs.ledger import jobs
from traces.store import Store

pytestmark = pytest.mark.contract

CLI = [sys.executable, "-m", "libra.cli.main"]


def _libra(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=300)


def _damage(store: Store) -> dict[str, str]:
    """Every kind of damage a crash, a shortened re-ingest or another writer can leave."""
    now = datetime.now(UTC).replace(tzinfo=None)
    ids = [r for r, in store.execute("SELECT run_id FROM runs ORDER BY run_id LIMIT 6")]
    half, duplicated, gone, shortened, noted = ids[:5]
    with store.transaction() as con:
        # a run with half its steps (a torn commit), one with a step twice
        con.execute("DELETE FROM steps WHERE run_id = ? AND idx >= 2", [half])
        con.execute("INSERT INTO steps SELECT * FROM steps WHERE run_id = ? AND idx = 0", [duplicated])
        # steps, imported feedback and verdicts of a run that is not there
        con.execute("DELETE FROM runs WHERE run_id = ?", [gone])
        con.execute("INSERT INTO scores (run_id, metric_set_id, metric_set_version, metric_id, value, backend, "
                    "backend_version, created_at) VALUES (?, 'set', 1, 'm', 1, 'offline', '1', ?)", [gone, now])
        # a note a person wrote, anchored past the end of a run ingested again shorter
        con.execute("INSERT INTO feedback (feedback_id, run_id, steps, author, text, origin, created_at) "
                    "VALUES ('note-past-end', ?, [0, 999], 'ann', 'see the last step', 'app', ?)", [shortened, now])
        con.execute("INSERT INTO feedback (feedback_id, run_id, steps, author, text, origin, created_at) "
                    "VALUES ('note-no-run', 'run-that-left', [0], 'ann', 'kept', 'app', ?)", [now])
        # a job, a claim and a scheduled run of a process that died (pid 1 on another boot)
        dead = "localhost-never:1:x.1"
        con.execute("INSERT INTO jobs (job_id, kind, params_hash, status, started_at, owner, heartbeat_at) "
                    "VALUES ('job-dead', 'score', 'h', 'running', ?, ?, TIMESTAMP '2020-01-01')", [now, dead])
        con.execute("INSERT INTO job_items (job_id, item_key, status, updated_at, owner) "
                    "VALUES ('job-dead', ?, 'claimed', TIMESTAMP '2020-01-01', ?)", [noted, dead])
    return {"half": half, "duplicated": duplicated, "gone": gone, "shortened": shortened}


def test_check_finds_every_problem_and_repair_fixes_what_needs_no_guess(store, demo_into):
    demo_into(store, 20, 3)
    clean = _libra("check", "--db", store.path)
    assert clean.returncode == 0 and "store is consistent" in clean.stdout, clean.stdout + clean.stderr
    store.close()
    hurt = _damage(store)
    found = _libra("check", "--db", store.path)
    assert found.returncode == 1, found.stdout
    report = libra.check(store)
    counts = {f.name: f.count for f in report.findings}
    assert counts["runs whose steps do not add up to n_steps"] == 2
    assert counts["steps of no run"] > 0 and counts["imported feedback of no run"] >= 0
    assert counts["verdicts on runs not in the store"] == 1
    assert counts["notes anchored past a run's last step"] == 1
    assert counts["people's notes on runs not in the store"] == 1
    assert counts["jobs left running by a process that is gone"] == 1
    assert counts["claims held by a process that is gone"] == 1
    assert hurt["shortened"] in found.stdout and "note-past-end" in found.stdout

    repaired = _libra("check", "--repair", "--db", store.path)
    assert "repaired" in repaired.stdout, repaired.stdout
    after = {f.name: f.count for f in libra.check(store).findings}
    # what needs a person stays, flagged: the note past the end and the note whose run left
    assert {k for k, v in after.items() if v} == {"notes anchored past a run's last step",
                                                   "people's notes on runs not in the store"}
    assert repaired.returncode == 1, "problems that need a person remain"
    assert store.scalar("SELECT count(*) FROM feedback WHERE feedback_id IN ('note-past-end', 'note-no-run')") == 2
    for run in (hurt["half"], hurt["duplicated"], hurt["gone"]):
        assert store.scalar("SELECT count(*) FROM runs WHERE run_id = ?", [run]) == 0
        assert store.scalar("SELECT count(*) FROM steps WHERE run_id = ?", [run]) == 0
    assert store.scalar("SELECT status FROM jobs WHERE job_id = 'job-dead'") == "abandoned"
    assert store.scalar("SELECT status FROM job_items WHERE job_id = 'job-dead'") == "pending"
    assert store.scalar("SELECT count(*) FROM (SELECT run_id, idx FROM steps GROUP BY ALL HAVING count(*) > 1)") == 0


class _SlowJudge:
    def __init__(self, inner):
        self.inner, self.backend = inner, inner.backend

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def judge(self, views, metric_set):
        time.sleep(0.3 * len(views))
        return self.inner.judge(views, metric_set)


def _score_slowly(location: str, set_id: str) -> None:
    from libra.scoring import build_judge
    from metrics.scoring import score_runs

    store = Store(location, lock_timeout=120)
    ms = sets.load(store, set_id)
    score_runs(store, ms, _SlowJudge(build_judge(store, ms, "offline")), chunk=2)


def test_a_job_whose_process_died_is_abandoned_and_the_next_run_takes_it_over(store, demo_into):
    from test_judge import METRICS

    demo_into(store, 24, 5)
    ms = sets.save(store, METRICS)
    libra.build_judge(store, ms, "offline")  # fitted and cached before the doomed process starts
    proc = mp.get_context("spawn").Process(target=_score_slowly, args=(store.path, ms.set_id))
    proc.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (store.scalar("SELECT count(*) FROM job_items WHERE status = 'done'") or 0) >= 4:
            break
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    [job] = jobs(store).itertuples()
    assert job.status == "abandoned", job
    listed = _libra("jobs", "--db", store.path)
    assert "abandoned" in listed.stdout and job.job_id in listed.stdout
    done_before = store.scalar("SELECT count(*) FROM job_items WHERE job_id = ? AND status = 'done'", [job.job_id])
    assert 0 < done_before < 24

    [(_, res)] = libra.score(store, set_id=ms.set_id, backend="offline")
    assert res.job_id == job.job_id, "the abandoned job is taken over, not started again beside it"
    assert res.runs_scored == 24 - done_before, "only what the dead process had not done"
    assert jobs(store).iloc[0]["status"] == "done"
    rows = store.execute("SELECT run_id, metric_id, count(*) FROM scores WHERE metric_set_id = ? GROUP BY ALL",
                         [ms.set_id])
    assert len(rows) == 24 * len(ms.metrics) and {n for *_, n in rows} == {1}
