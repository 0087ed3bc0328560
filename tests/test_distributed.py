"""Distributed scoring: several workers, an annotator writing at the same time, a worker
killed mid-partition, and a local Ray cluster. Nothing lost, nothing written twice."""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from libra.scoring import build_judge
from libra.scoring import score_on_ray as score_distributed
from metrics import sets
from metrics.jobs.distributed import partitions, plan, work
from traces.annotation import feedback
from libra.demo import generate_runs
from traces.store import Store
from test_judge import METRICS  # noqa: I001 - a sibling test module

FACTORY = functools.partial(build_judge, backend="offline")
N_RUNS = 40
N_NOTES = 60


def _prepare(store: Store, demo_into, size: int = 8) -> tuple[str, object]:
    demo_into(store, N_RUNS, 11)
    ms = sets.save(store, METRICS)
    judge = FACTORY(store, ms)  # grounds and caches what the workers' judges are fitted on
    return plan(store, ms, judge.backend, size=size), ms


def _meeting_worker(location: str, job_id: str, meeting) -> None:
    """A worker that holds its first judged partition until the other worker has judged one too.

    Without the meeting a worker that starts first on a loaded machine may take every
    partition before the other has built its judge; the test is about two at once."""
    met = []

    def hook(stage: str) -> None:
        if stage == "judged" and not met:
            met.append(meeting.wait(timeout=600))

    work(location, job_id, FACTORY, hook=hook)


def _annotator(location: str, run_ids: list[str]) -> None:
    store = Store(location, lock_timeout=120)
    for i in range(N_NOTES):
        feedback.add(store, run_ids[i % len(run_ids)], f"ann{i % 3}", f"note {i}: the agent looped here",
                     flush_now=i % 10 == 0)
    while feedback.flush(store):  # everything journalled reaches the store before leaving
        pass


def _die(stage: str) -> None:
    if stage == "judged":
        os.kill(os.getpid(), signal.SIGKILL)


def _doomed_worker(location: str, job_id: str) -> None:
    work(location, job_id, FACTORY, hook=_die)


def _assert_exactly_once(store: Store, job_id: str, ms) -> None:
    keys = store.execute("SELECT run_id, metric_id, count(*) FROM scores WHERE metric_set_id = ? "
                         "AND metric_set_version = ? GROUP BY ALL", [ms.set_id, ms.version])
    assert len(keys) == N_RUNS * len(ms.metrics)
    assert {n for _, _, n in keys} == {1}, "a verdict was written twice"
    assert {s for _, s in partitions(store, job_id)} == {"done"}
    assert store.scalar("SELECT sum(n_scored) FROM score_partitions WHERE job_id = ?", [job_id]) == N_RUNS


@pytest.mark.contract
def test_two_workers_and_an_annotator_lose_and_duplicate_nothing(store, demo_into):
    job_id, ms = _prepare(store, demo_into)
    run_ids = [r for r, in store.execute("SELECT run_id FROM runs ORDER BY run_id")]
    ctx = mp.get_context("spawn")
    meeting = ctx.Barrier(2)
    procs = [ctx.Process(target=_meeting_worker, args=(store.path, job_id, meeting)) for _ in range(2)]
    procs.append(ctx.Process(target=_annotator, args=(store.path, run_ids)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=900)
        assert p.exitcode == 0
    _assert_exactly_once(store, job_id, ms)
    workers = store.execute("SELECT DISTINCT worker FROM score_partitions WHERE job_id = ?", [job_id])
    assert len(workers) == 2, "both workers took partitions"
    notes = store.execute("SELECT feedback_id, text FROM feedback WHERE origin = 'app'")
    assert len(notes) == N_NOTES and len({f for f, _ in notes}) == N_NOTES
    assert sorted(int(t.split(":")[0][5:]) for _, t in notes) == list(range(N_NOTES))


@pytest.mark.contract
def test_a_worker_killed_mid_partition_leaves_the_job_to_finish_exactly_once(store, demo_into):
    job_id, ms = _prepare(store, demo_into)
    ctx = mp.get_context("spawn")
    doomed = ctx.Process(target=_doomed_worker, args=(store.path, job_id))
    doomed.start()
    doomed.join(timeout=600)
    assert doomed.exitcode == -signal.SIGKILL
    states = dict(partitions(store, job_id))
    assert "claimed" in states.values() and "done" not in states.values()
    # the claim names a process that is gone: taken over at once, not after the lease
    outcomes = work(store.path, job_id, FACTORY)
    assert not any(o.skipped for o in outcomes)
    _assert_exactly_once(store, job_id, ms)
    # scoring the job again commits nothing more
    assert all(o.skipped for o in work(store.path, job_id, FACTORY, lease=timedelta(0)))
    _assert_exactly_once(store, job_id, ms)


@pytest.mark.contract
def test_a_live_workers_claim_is_left_alone_and_a_silent_one_elsewhere_expires(store, demo_into):
    import subprocess
    import sys

    from metrics.jobs.distributed import claim, open_partitions
    from traces import owner

    job_id, _ = _prepare(store, demo_into)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = owner.of(sleeper.pid)
        assert owner.alive(live) is True
        cols = ("run_ids",)
        assert claim(store, "score_partitions", job_id, 0, live, timedelta(minutes=10), cols) is not None
        assert claim(store, "score_partitions", job_id, 1, "elsewhere:1:x.1", timedelta(minutes=10), cols)
        me = owner.current()
        assert claim(store, "score_partitions", job_id, 0, me, timedelta(0), cols) is None, "a live claim"
        assert claim(store, "score_partitions", job_id, 1, me, timedelta(minutes=10), cols) is None, "fresh"
        assert claim(store, "score_partitions", job_id, 1, me, timedelta(0), cols) is not None, "lease over"
        free, held = open_partitions(store, job_id)
        assert 0 in held and 1 in held and 2 in free
        sleeper.kill()
        sleeper.wait()
        assert owner.alive(live) is False
        assert claim(store, "score_partitions", job_id, 0, me, timedelta(minutes=10), cols) is not None
    finally:
        sleeper.kill()


@pytest.mark.timeout(900)
def test_libra_scores_on_a_local_ray_cluster(store, demo_into, ray_cluster):
    demo_into(store, N_RUNS, 11)
    ms = sets.save(store, METRICS)
    [(got, res)] = score_distributed(store, ray="local", set_id=ms.set_id, backend="offline", partition_size=10)
    assert got.set_id == ms.set_id and res.partitions == 4 and res.runs_scored == N_RUNS
    _assert_exactly_once(store, res.job_id, ms)
    again = score_distributed(store, ray="local", set_id=ms.set_id, backend="offline")
    assert again[0][1].partitions == 0, "nothing left to score"
    # the workers judged with the driver's judge, shipped once; none built its own
    # (a lambda travels by value; a function of this test module would not import on a worker)
    probe = ray_cluster.remote(lambda: list(__import__("metrics.jobs.distributed", fromlist=["_"])._judges))
    keys = [k for ks in ray_cluster.get([probe.remote() for _ in range(8)]) for k in ks]
    assert keys and all(k[3][0] == "built" for k in keys), keys


def test_partitions_are_cut_by_steps_as_well_as_runs():
    from metrics.jobs.distributed import cut

    runs = [f"r{i}" for i in range(10)]
    steps = {"r0": 10, "r1": 10, "r2": 900, "r3": 10, "r4": 10, "r5": 10, "r6": 2000, "r7": 5, "r8": 5, "r9": 5}
    parts = cut(runs, steps, size=4, max_steps=1000)
    assert [r for p in parts for r in p] == runs  # every run once, in order
    assert ["r6"] in parts  # a run longer than the bound is a partition of its own
    for p in parts:
        assert len(p) <= 4 and (len(p) == 1 or sum(steps[r] for r in p) <= 1000)
    assert parts == [["r0", "r1", "r2", "r3"], ["r4", "r5"], ["r6"], ["r7", "r8", "r9"]]


def test_plan_cuts_a_backlog_of_long_runs_into_more_partitions(store, demo_into):
    demo_into(store, N_RUNS, 11)
    ms = sets.save(store, METRICS)
    by_runs = plan(store, ms, "x-runs", size=100, max_steps=10**9)
    steps = store.scalar("SELECT sum(n_steps) FROM runs")
    by_steps = plan(store, ms, "x-steps", size=100, max_steps=steps // 4)
    assert len(partitions(store, by_runs)) == 1
    assert 4 <= len(partitions(store, by_steps)) <= 6


def test_a_judge_built_once_travels_to_a_worker_and_judges_alike(tmp_path, demo_into):
    import pickle

    from metrics.jobs.distributed import Built, _judge_for
    from traces.export import load_runs
    from metrics.judges.base import RunView

    store = Store(tmp_path / "ship.duckdb")
    demo_into(store, N_RUNS, 11)
    ms = sets.save(store, METRICS)
    built = Built(FACTORY(store, ms))
    copy = pickle.loads(pickle.dumps(built))  # what a worker receives
    assert copy.token == built.token and copy.judge is not built.judge
    runs = load_runs(store, [r for r, in store.execute("SELECT run_id FROM runs ORDER BY run_id LIMIT 12")])
    views = [RunView(r.run_id, r.steps, r.task) for r in runs.values()]
    assert copy.judge.judge(views, ms) == built.judge.judge(views, ms)
    # a worker's process keeps the shipped judge under its token, once
    _, first = _judge_for(store, ms.set_id, ms.version, copy)
    _, again = _judge_for(store, ms.set_id, ms.version, pickle.loads(pickle.dumps(built)))
    assert first is again is copy.judge
    with pytest.raises(TypeError, match="in-memory"):
        pickle.dumps(Store(":memory:"))


def _ingest(location: str, path: str) -> None:
    from traces.ingest import ingest

    ingest(Store(location, lock_timeout=120), [path], batch_steps=300, workers=1)


@pytest.mark.contract
def test_two_processes_ingesting_the_same_new_runs_store_each_once(store, tmp_path):
    """A lake has no keys to refuse a second copy of a run; its run writes are serialised."""
    from traces.export import write_jsonl

    src = tmp_path / "same.jsonl"
    write_jsonl(generate_runs(120, seed=21), src)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_ingest, args=(store.path, str(src))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
        assert p.exitcode == 0
    assert store.scalar("SELECT count(*) FROM runs") == 120
    assert store.scalar("SELECT count(DISTINCT run_id) FROM runs") == 120
    n_steps = sum(len(r.steps) for r in generate_runs(120, seed=21))
    assert store.scalar("SELECT count(*) FROM steps") == n_steps
    assert store.scalar("SELECT count(*) FROM (SELECT DISTINCT run_id, idx FROM steps)") == n_steps
    assert store.scalar("SELECT count(*) FROM feedback") == \
        store.scalar("SELECT count(DISTINCT feedback_id) FROM feedback")


class _TinyModel:
    """Just enough of a fitted reward model for artefacts.save."""

    kind, classifiers_, threshold_, n_train_ = "embedding-lr", {}, 0.5, 1

    def params(self) -> dict:
        return {}


def _save_versions(location: str, who: int, root: str) -> None:
    from dataclasses import replace

    from pipa.proactive import artefacts

    store = Store(location, lock_timeout=120)
    for i in range(4):
        sets.save(store, replace(METRICS, name=f"saved by {who}, #{i}"))
        if i % 2:
            artefacts.save(store, _TinyModel(), "rm", data_hash=f"{who}-{i}", root=Path(root))


@pytest.mark.contract
def test_versions_saved_at_once_by_several_processes_are_all_distinct(store, tmp_path):
    """Numbering a version (max + 1) is serialised: no two saves get the same number."""
    import json

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_save_versions, args=(store.path, k, str(tmp_path / "models")))
             for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
        assert p.exitcode == 0
    versions = [v for (v,) in store.execute("SELECT version FROM metric_sets WHERE set_id = ? ORDER BY 1",
                                            [METRICS.set_id])]
    assert versions == list(range(1, 13))
    per_version = store.execute("SELECT version, count(*) FROM metric_defs WHERE set_id = ? GROUP BY 1",
                                [METRICS.set_id])
    assert {n for _, n in per_version} == {len(METRICS.metrics)} and len(per_version) == 12
    models = store.execute("SELECT version, data_hash, path FROM reward_models WHERE name = 'rm' ORDER BY 1")
    assert [v for v, _, _ in models] == list(range(1, 7))
    assert len({h for _, h, _ in models}) == 6
    for version, digest, path in models:  # each folder holds the files of the save that got its number
        manifest = json.loads((Path(path) / "manifest.json").read_text())
        assert (manifest["version"], manifest["data_hash"]) == (version, digest)
    assert store.scalar("SELECT count(*) FROM model_files") == 6
    assert not [p for p in (tmp_path / "models" / "rm").iterdir() if p.name.startswith(".")]


def _embed_worker(location: str, job_id: str) -> None:
    from metrics.jobs import embed_backlog

    embed_backlog.work(location, job_id)


def _doomed_embed_worker(location: str, job_id: str) -> None:
    from metrics.jobs import embed_backlog

    embed_backlog.work(location, job_id, hook=lambda stage: _die("judged" if stage == "embedded" else stage))


def _step_hashes(store: Store) -> set[str]:
    from metrics.embeddings import text_hash
    from metrics.judges.base import step_text
    from traces.export import iter_runs

    return {text_hash(step_text(s)) for r in iter_runs(store) for s in r.steps}


@pytest.mark.contract
@pytest.mark.slow  # ~25 s on both backends; `make test` keeps the scoring-workers contract tests above
def test_embedding_a_backlog_on_workers_stores_each_vector_once(store, demo_into):
    """Two workers and one killed after embedding: every step text cached, each exactly once."""
    from metrics.jobs import embed_backlog

    demo_into(store, N_RUNS, 11)
    model = embed_backlog.model_name()
    job_id = embed_backlog.plan(store, model, size=8)
    ctx = mp.get_context("spawn")
    doomed = ctx.Process(target=_doomed_embed_worker, args=(store.path, job_id))
    doomed.start()
    doomed.join(timeout=600)
    assert doomed.exitcode == -signal.SIGKILL
    procs = [ctx.Process(target=_embed_worker, args=(store.path, job_id)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=900)
        assert p.exitcode == 0
    # the dead worker's claim names a process that is gone: the live workers took it over
    assert set(dict(partitions(store, job_id, "embed_partitions")).values()) == {"done"}
    rows = store.execute("SELECT content_hash, count(*) FROM embeddings WHERE model = ? GROUP BY ALL", [model])
    assert {n for _, n in rows} == {1}, "a vector was stored twice"
    assert {h for h, _ in rows} == _step_hashes(store)
    # the offline judge now finds every step text cached
    from metrics.embeddings import default_embedder
    from metrics.judges.base import step_text
    from traces.export import iter_runs

    emb = default_embedder(store)
    emb.embed([step_text(s) for r in iter_runs(store) for s in r.steps])
    assert emb.misses == 0 and emb.hits > 0
    assert embed_backlog.plan(store, model) and embed_backlog.pending_runs(store, model) == []


@pytest.mark.timeout(900)
def test_embedding_a_backlog_on_a_local_ray_cluster(store, demo_into, ray_cluster):
    from metrics.jobs import embed_backlog

    demo_into(store, N_RUNS, 12)
    res = embed_backlog.embed_backlog(store, ray="local", size=10)
    assert res.partitions == 4 and res.embedded == len(_step_hashes(store)) > 0
    again = embed_backlog.embed_backlog(store, ray="local")
    assert again.partitions == 0 and again.embedded == 0
    rows = store.execute("SELECT count(*), count(DISTINCT content_hash) FROM embeddings")
    assert rows[0][0] == rows[0][1]


class _SlowJudge:
    """The offline judge, slowed down, whose first call waits until the other process has made one.

    Without the meeting, a process that starts seconds late on a loaded machine (spawning
    and importing the judge's libraries) finds the backlog done: the same race that made
    the annotator test above fail in CI."""

    def __init__(self, inner, meeting):
        self.inner, self.backend, self.name = inner, inner.backend, getattr(inner, "name", inner.backend)
        self.meeting, self.met = meeting, False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def judge(self, views, metric_set):
        import time

        if not self.met:
            self.met = True
            self.meeting.wait(timeout=600)
        time.sleep(0.15 * len(views))
        return self.inner.judge(views, metric_set)


def _plain_scorer(location: str, set_id: str, out, meeting) -> None:
    from metrics.scoring import score_runs

    store = Store(location, lock_timeout=120)
    ms = sets.load(store, set_id)
    res = score_runs(store, ms, _SlowJudge(FACTORY(store, ms), meeting), chunk=4)
    out.put((os.getpid(), res.runs_scored, res.runs_skipped, res.status))


@pytest.mark.contract
@pytest.mark.slow  # ~33 s on both backends; two workers sharing a backlog is also checked by the annotator test above
def test_two_scoring_processes_on_one_backlog_share_it(store, demo_into):
    """Two schedulers starting `libra score` at once do the backlog once between them, not twice."""
    demo_into(store, N_RUNS, 11)
    ms = sets.save(store, METRICS)
    FACTORY(store, ms)  # fit once here, so both processes start judging at once
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    meeting = ctx.Barrier(2)
    procs = [ctx.Process(target=_plain_scorer, args=(store.path, ms.set_id, out, meeting)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=900)
        assert p.exitcode == 0
    results = [out.get(timeout=10) for _ in procs]
    assert sum(done for _, done, _, _ in results) == N_RUNS, results
    assert all(done > 0 for _, done, _, _ in results), f"both processes took a share: {results}"
    keys = store.execute("SELECT run_id, metric_id, count(*) FROM scores WHERE metric_set_id = ? GROUP BY ALL",
                         [ms.set_id])
    assert len(keys) == N_RUNS * len(ms.metrics) and {n for *_, n in keys} == {1}
    [(status,)] = store.execute("SELECT status FROM jobs WHERE kind = 'score'")
    assert status == "done"


@pytest.mark.contract
def test_planning_a_backlog_an_unfinished_job_covers_joins_that_job(store, demo_into):
    """Two drivers started on one backlog get one job: the second adds only what the first does not hold."""
    job_id, ms = _prepare(store, demo_into)
    parts = partitions(store, job_id)
    judge = FACTORY(store, ms)
    assert plan(store, ms, judge.backend, size=8) == job_id, "joined, not a second job"
    assert partitions(store, job_id) == parts, "nothing planned twice"
    demo_into(store, 10, 99)  # new runs arrive; the next driver adds them to the same job
    assert plan(store, ms, judge.backend, size=8) == job_id
    added = [p for p, _ in partitions(store, job_id)][len(parts):]
    held = {r for r, in store.execute("SELECT unnest(run_ids) FROM score_partitions WHERE job_id = ?", [job_id])}
    assert added and len(held) == store.scalar("SELECT count(*) FROM runs")
    work(store.path, job_id, FACTORY)
    assert plan(store, ms, judge.backend, size=8) != job_id, "a finished job is not joined"


_RAY_PROCS = "raylet|gcs_server|ray::"


def _ray_pids() -> set[str]:
    import subprocess

    return set(subprocess.run(["pgrep", "-f", _RAY_PROCS], capture_output=True, text=True).stdout.split())


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_killed_drivers_local_ray_cluster_does_not_outlive_it(tmp_path, demo_into):
    import subprocess
    import sys
    import time

    store = Store(str(tmp_path / "ray.duckdb"))
    demo_into(store, 200, 3)
    ms = sets.save(store, METRICS)
    store.close()
    before = _ray_pids()
    driver = subprocess.Popen([sys.executable, "-c", (
        "import libra\n"
        f"libra.score_on_ray(libra.open_store({store.path!r}), ray='local', set_id={ms.set_id!r}, "
        "backend='offline', partition_size=5)\n")], env=dict(os.environ))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(_ray_pids() - before) < 3:
        time.sleep(0.3)
    assert driver.poll() is None and len(_ray_pids() - before) >= 3, "the local cluster did not start"
    time.sleep(3)  # its agents up too
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _ray_pids() - before:
        time.sleep(0.5)
    assert not _ray_pids() - before, "Ray helpers outlived the driver that started them"
