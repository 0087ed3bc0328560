"""Scoring, composed: which judge each metric set gets, and the backlog of every approved set.

The one place that knows PIPA sets are scored per domain policy, that
proactivity sets have their own command, and that induced and hand-written
sets get the LLM judge with a key and a judge trained on people's feedback
without one. The CLI, the scheduler, `bench/`, Ray workers and notebooks all
score through here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from libra.defaults import BATCH_FROM
from metrics import sets
from metrics.backends import Backend, choose_backend
from metrics.definitions import MetricSet
from metrics.judges.base import Judge
from metrics.judges.llm import LLMJudge
from metrics.judges.registry import judge_for, register_judge, set_kind
from metrics.jobs.distributed import PARTITION_STEPS, Built, DistributedSummary
from metrics.jobs.distributed import score_on_ray as _score_on_ray
from metrics.scoring import ScoreSummary, score_runs, select_runs, unscored
from pipa.judge import PipaJudge
from pipa.scoring import score_pipa
from traces.store import Store

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def _induced_judge(store: Store, ms: MetricSet, backend: Backend, batch: bool) -> Judge:
    from autolibra.backends import fit_offline_judge

    if backend.llm is not None:
        return LLMJudge(backend.llm, use_batch=batch)
    return fit_offline_judge(store, ms, backend.embedder)


register_judge("metrics", _induced_judge)
register_judge("pipa", lambda store, ms, backend, batch: PipaJudge(backend.llm))
register_judge("proactivity", lambda store, ms, backend, batch: None)  # `libra proactive score`


def build_judge(store: Store, ms: MetricSet, backend: str = "auto") -> Judge | None:
    """A metric set's judge, built where it runs (a Ray worker, a worker process)."""
    return judge_for(store, ms, choose_backend(store, backend))


def _stage(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    """progress(done, total) reported as one stage of a staged progress(stage, done, total)."""
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


def _targets(store: Store, set_id: str | None, version: int | None) -> list[MetricSet]:
    return [sets.load(store, set_id, version)] if set_id else sets.approved(store)


def score(store: Store, *, set_id: str | None = None, version: int | None = None, backend: str = "auto",
          max_cost: float | None = None, batch: str = "auto", agent: str | None = None, fmt: str | None = None,
          since: datetime | None = None, sample: float | None = None, focus: str | None = None,
          per_agent: bool = False, progress: Progress | None = None) -> list[tuple[MetricSet, ScoreSummary]]:
    """Apply metric sets (default: every approved one) to the runs they have not scored yet.

    Incremental and resumable: run it again and only what is missing is scored.
    `batch` is on, off or auto (the Message Batches API from BATCH_FROM pending runs).
    Each metric is judged on the subject its definition names (the run, or each
    agent of a multi-agent run); `focus` puts every metric on one actor, and
    `per_agent` every metric on each agent.
    """
    if batch not in ("on", "off", "auto"):
        raise ValueError("batch must be on, off or auto")
    targets = _targets(store, set_id, version)
    b = choose_backend(store, backend, max_cost)
    results: list[tuple[MetricSet, ScoreSummary]] = []
    if any(set_kind(ms) == "pipa" for ms in targets):
        # PIPA sets are per domain policy: score_pipa finds each new run's policy and its set
        ids = select_runs(store, agent=agent, fmt=fmt, since=since, sample=sample, salt="pipa")
        results += score_pipa(
            store, PipaJudge(b.llm), run_ids=ids, max_cost=max_cost,
            progress=_stage(progress, "pipa"))
        targets = [ms for ms in targets if set_kind(ms) != "pipa"]
    for ms in targets:
        ids = select_runs(store, agent=agent, fmt=fmt, since=since, sample=sample, salt=ms.set_id)
        use_batch = batch == "on" or (batch == "auto" and b.llm is not None and
                                      len(unscored(store, ms, "llm", ids)) >= BATCH_FROM)
        judge = judge_for(store, ms, b, use_batch)
        if judge is None:
            continue
        res = score_runs(store, ms, judge, run_ids=ids, max_cost=max_cost, focus=focus, per_agent=per_agent,
                         progress=_stage(progress, ms.set_id))
        results.append((ms, res))
    return results


def score_on_ray(store: Store, *, ray: str, set_id: str | None = None, version: int | None = None,
                 backend: str = "auto", partition_size: int = 100, partition_steps: int = PARTITION_STEPS,
                 workers: int | None = None, agent: str | None = None,
                 fmt: str | None = None, since: datetime | None = None, sample: float | None = None,
                 progress: Progress | None = None) -> list[tuple[MetricSet, DistributedSummary]]:
    """Score each metric set's backlog on a Ray cluster (`ray`: an address, auto, or local), exactly once.

    The judge is built once, here, and shipped to the workers. Partitions hold at most
    `partition_size` runs and `partition_steps` steps. `workers`: CPUs of a local cluster
    (one task each; default: this machine's).
    """
    out: list[tuple[MetricSet, DistributedSummary]] = []
    for ms in _targets(store, set_id, version):
        ids = select_runs(store, agent=agent, fmt=fmt, since=since, sample=sample, salt=ms.set_id)
        judge = build_judge(store, ms, backend)  # once, here; every worker gets this one
        if judge is None:
            continue
        res = _score_on_ray(store, ms, judge.backend, Built(judge),
                            address=None if ray == "local" else ray, run_ids=ids, size=partition_size,
                            max_steps=partition_steps, num_cpus=workers, progress=_stage(progress, ms.set_id))
        out.append((ms, res))
    return out


def score_pipa_runs(store: Store, *, backend: str = "auto", max_cost: float | None = None, fmt: str | None = None,
                    agent: str | None = None, policy: str | None = None,
                    progress: Callable[[int, int], None] | None = None) -> tuple[str, list[tuple[MetricSet, ScoreSummary]]]:
    """PIPA criteria on every run not yet scored; (the judge's backend, results)."""
    b = choose_backend(store, backend, max_cost)
    judge = PipaJudge(b.llm)
    return judge.backend, score_pipa(store, judge, fmt=fmt, agent=agent, policy=policy, max_cost=max_cost,
                                     progress=progress)
