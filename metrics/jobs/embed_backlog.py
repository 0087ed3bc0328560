"""Embedding a backlog of runs ahead of offline judging, here or on a Ray cluster.

Offline judges and grounding embed every step they read (`metrics.judge.step_text`);
on a large backlog that is most of their time. `libra embed` fills the store's
embedding cache first. The backlog is split into partitions of runs, recorded in
`embed_partitions` and committed exactly once like scoring partitions (see
`metrics.jobs.distributed`): a worker embeds the texts of its runs that the cache
lacks and writes the vectors together with the partition's done-mark in one
transaction. Embedding writes are serialised with one another, so a text that
two partitions share (a system prompt, a common reply) is stored once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from metrics.jobs import distributed
from metrics.embeddings import Embedder, by_name, embedder_for, text_hash, vector_rows
from metrics.judges.base import step_text
from traces.store import Store, only_in

TABLE = "embed_partitions"
_embedders: dict[str, Embedder] = {}  # per worker process: the model loads once


@dataclass(frozen=True)
class EmbedSummary:
    job_id: str
    model: str
    partitions: int
    texts: int  # distinct step texts of the partitions' runs
    embedded: int  # of them, embedded by this job (the rest were cached)
    seconds: float


def model_name(model: str | None = None) -> str:
    return embedder_for(None, model).name


def pending_runs(store: Store, model: str, run_ids: list[str] | None = None) -> list[str]:
    """Runs that no committed partition of this model has embedded yet."""
    sql = ("SELECT run_id FROM runs WHERE run_id NOT IN (SELECT unnest(run_ids) FROM embed_partitions "
           "WHERE model = ? AND status = 'done')")
    clause, params = only_in("run_id", run_ids)
    return [r for r, in store.execute(sql + clause + " ORDER BY run_id", [model, *params])]


def plan(store: Store, model: str, run_ids: list[str] | None = None, size: int = 500) -> str:
    """Record the partitions of the runs `model` has not embedded; returns the job id."""
    pending = pending_runs(store, model, run_ids)
    job_id = f"embed-{uuid.uuid4().hex[:12]}"
    rows = [[job_id, k, pending[i:i + size], model, "pending"]
            for k, i in enumerate(range(0, len(pending), size))]
    if rows:
        with store.transaction() as con:
            con.executemany("INSERT INTO embed_partitions (job_id, part, run_ids, model, status) "
                            "VALUES (?, ?, ?, ?, ?)", rows)
    return job_id


def _texts(store: Store, run_ids: list[str]) -> dict[str, str]:
    """hash -> text of every distinct step text of these runs, as offline judges embed them."""
    from traces.export import load_runs

    out: dict[str, str] = {}
    for run in load_runs(store, run_ids).values():
        for s in run.steps:
            t = step_text(s)
            out.setdefault(text_hash(t), t)
    return out


def _cached(con, model: str, hashes: list[str]) -> set[str]:
    return {h for h, in con.execute(
        "SELECT content_hash FROM embeddings WHERE model = ? AND content_hash IN (SELECT unnest(?::VARCHAR[]))",
        [model, hashes]).fetchall()}


def run_partition(location: str, job_id: str, part: int, *, lease: timedelta = distributed.LEASE,
                  hook: Callable[[str], None] | None = None) -> distributed.Outcome:
    """Embed one partition's missing texts and commit them with its done-mark, exactly once."""
    store = Store(location)
    worker = distributed.worker_name()
    claimed = distributed.claim(store, TABLE, job_id, part, worker, lease, ("run_ids", "model"))
    if claimed is None:
        return distributed.Outcome(part, 0, 0, True)
    try:
        return _embed_claimed(store, job_id, part, worker, claimed, hook)
    except Exception:
        distributed.release(store, TABLE, job_id, part, worker)
        raise


def _embed_claimed(store: Store, job_id: str, part: int, worker: str, claimed: tuple,
                   hook: Callable[[str], None] | None) -> distributed.Outcome:
    run_ids, model = list(claimed[0]), claimed[1]
    texts = _texts(store, run_ids)
    with store.connection() as con:
        have = _cached(con, model, list(texts))
    missing = [h for h in texts if h not in have]
    if model not in _embedders:
        _embedders[model] = by_name(model)
    vecs = _embedders[model].embed([texts[h] for h in missing]) if missing else np.zeros((0, 0), np.float32)
    if hook:
        hook("embedded")  # tests stop a worker here, between embedding and committing

    def write(con) -> int:
        # Another job may have cached some of these meanwhile: only what is still missing.
        fresh = _cached(con, model, missing)
        keep = [i for i, h in enumerate(missing) if h not in fresh]
        if keep:
            table = vector_rows(model, [missing[i] for i in keep], [vecs[i] for i in keep])
            con.register("_libra_new_vectors", table)
            con.execute("INSERT INTO embeddings BY NAME SELECT * FROM _libra_new_vectors")
            con.unregister("_libra_new_vectors")
        return len(keep)

    committed = distributed.commit_once(store, TABLE, job_id, part, worker, write,
                                        lambda n: {"n_texts": len(texts), "n_embedded": n},
                                        serialise="embeddings")
    if committed is None:
        return distributed.Outcome(part, 0, 0, True)
    return distributed.Outcome(part, committed, 0, False)


def work(location: str, job_id: str, *, lease: timedelta = distributed.LEASE,
         hook: Callable[[str], None] | None = None) -> list[distributed.Outcome]:
    """Take and embed this job's partitions until none is left to take (a worker process's loop)."""
    store = Store(location)
    return [run_partition(location, job_id, p, lease=lease, hook=hook)
            for p, s in distributed.partitions(store, job_id, TABLE) if s != "done"]


def embed_backlog(store: Store, model: str | None = None, *, ray: str | None = None,
                  run_ids: list[str] | None = None, size: int = 500,
                  progress: Callable[[int, int], None] | None = None) -> EmbedSummary:
    """Embed the step texts of every run not yet embedded with `model`.

    `ray`: a cluster address, "auto", or "local" to start one here; None embeds in
    this process, partition by partition, through the same exactly-once commits.
    """
    t0 = time.perf_counter()
    name = model_name(model)
    job_id = plan(store, name, run_ids, size)
    parts = [p for p, _ in distributed.partitions(store, job_id, TABLE)]
    if ray is None:
        for i, p in enumerate(parts):
            run_partition(store.path, job_id, p)
            if progress:
                progress(i + 1, len(parts))
    else:
        distributed.on_ray(run_partition, [(store.path, job_id, p) for p in parts],
                           address=None if ray == "local" else ray, progress=progress)
    left = [p for p, s in distributed.partitions(store, job_id, TABLE) if s != "done"]
    if left:
        raise RuntimeError(f"job {job_id}: partitions {left} were not committed")
    texts, embedded = store.execute(
        "SELECT coalesce(sum(n_texts), 0), coalesce(sum(n_embedded), 0) FROM embed_partitions WHERE job_id = ?",
        [job_id])[0]
    return EmbedSummary(job_id, name, len(parts), int(texts), int(embedded), time.perf_counter() - t0)
