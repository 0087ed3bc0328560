"""Pairwise preferences, composed: queues of pairs, saving a choice, rankings, agreement, judges.

    qid = libra.preferences.pairwise_queue(store, "v1 vs v2", "admin", agents=[A, B], k=2)
    libra.preferences.record(store, run_a, run_b, "alice", "b", "B confirmed before booking", steps_b=[4])
    libra.preferences.rank(store)            # Bradley–Terry strength with intervals beside the metric ranking
    libra.preferences.judge(store, backend="offline")   # a judge's agreement with people beside people's own
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from metrics.backends import choose_backend
from metrics.preferences import (
    Agreement, LLMPairJudge, MetricPairJudge, PairVerdict, agreement as _agreement, bradley_terry, judge_agreement,
)
from traces.annotation import preferences as prefs_store
from traces.annotation import queues
from traces.export import load_runs
from traces.store import Store

load = prefs_store.load


def pairwise_queue(store: Store, name: str, created_by: str, *, agents: Sequence[str] | None = None,
                   pairs: int = 100, k: int = 2, seed: int = 0) -> str:
    """A queue of up to `pairs` same-task pairs by different agents (of `agents`), k people each."""
    found = prefs_store.same_task_pairs(store, agents=agents, limit=pairs, seed=seed)
    if not found:
        raise ValueError("no task was run by two of those agents: nothing to compare side by side")
    return queues.create_pairwise(store, name, created_by, found, k=k)


def record(store: Store, run_a: str, run_b: str, author: str, choice: str, reason: str = "", *,
           steps_a: Iterable[int] = (), steps_b: Iterable[int] = (), queue_id: str | None = None) -> str:
    """Save a preference (and its reason as a note on the run it speaks for); finish the queue item."""
    with store.hold():  # one open of the file for the note, the preference and the queue
        pref = prefs_store.save(store, run_a, run_b, author, choice, reason, steps_a=steps_a, steps_b=steps_b,
                                queue_id=queue_id)
        if queue_id is not None:
            queues.finish(store, queue_id, queues.pair_id(run_a, run_b), author)
    return pref


def _metric_set(store: Store, set_id: str | None) -> tuple[str, int] | None:
    """The approved set (of metrics, not PIPA's or proactivity's) that scored the most runs; or `set_id`'s."""
    row = store.execute(
        """
        SELECT s.metric_set_id, s.metric_set_version FROM scores s
        JOIN metric_sets m ON m.set_id = s.metric_set_id AND m.version = s.metric_set_version
        WHERE m.status = 'approved' AND m.approved_by IS NOT NULL
          AND (?::VARCHAR IS NULL AND json_extract_string(m.provenance, '$.kind') IS NULL OR s.metric_set_id = ?)
        GROUP BY ALL ORDER BY count(DISTINCT s.run_id) DESC, s.metric_set_version DESC LIMIT 1
        """, [set_id, set_id])
    return (str(row[0][0]), int(row[0][1])) if row else None


def rank(store: Store, *, queue_id: str | None = None, set_id: str | None = None, seed: int = 0) -> pd.DataFrame:
    """Agents by Bradley–Terry strength from people's preferences (95% bootstrap interval), beside their
    rank by the metric set that scored the most runs: the share of +1 among its ±1 verdicts."""
    bt = bradley_terry(load(store, queue_id=queue_id), seed=seed).rename(columns={"item": "agent"})
    picked = _metric_set(store, set_id)
    if picked is None or bt.empty:
        return bt.assign(metric_score=float("nan"), metric_rank=pd.NA)
    ms = store.df("SELECT agent, sum((value > 0)::INT) / nullif(sum((value <> 0)::INT), 0) AS metric_score "
                  "FROM scores WHERE metric_set_id = ? AND metric_set_version = ? GROUP BY agent", list(picked))
    out = bt.merge(ms, on="agent", how="left")
    out["metric_rank"] = out["metric_score"].rank(ascending=False, method="min").astype("Int64")
    return out


def agreement(store: Store, *, queue_id: str | None = None) -> Agreement:
    return _agreement(load(store, queue_id=queue_id))


@dataclass(frozen=True)
class JudgedPreferences:
    backend: str
    verdicts: list[PairVerdict]
    figures: dict[str, float | int | None]  # judge_vs_people, people_vs_people, always_left_vs_people, counts, folds


FOLDS = 5


def _cross_fitted(judge: MetricPairJudge, p: pd.DataFrame, pairs: list[tuple[str, str]]) -> tuple[list[PairVerdict], int]:
    """Each pair judged by a judge fitted on the other tasks' preferences only, so the agreement reported
    is on tasks the judge learnt nothing from (folds grouped by task; a pair without a task is its own
    group). With fewer than two groups, or too few labels outside a fold, the net verdict judges it."""
    groups = p["task"].fillna(p["pair_id"])
    task_of = dict(zip(p["pair_id"], groups, strict=True))
    tasks = sorted(set(groups))
    if len(tasks) < 2:
        return judge.judge(pairs), 0
    k = min(FOLDS, len(tasks))
    fold_of = {t: i % k for i, t in enumerate(tasks)}
    out: dict[str, PairVerdict] = {}
    for fold in range(k):
        held = [(a, b) for a, b in pairs if fold_of[task_of[queues.pair_id(a, b)]] == fold]
        if held:
            judge.fit(p[groups.map(fold_of) != fold])
            out.update({v.pair_id: v for v in judge.judge(held)})
    return [out[queues.pair_id(a, b)] for a, b in pairs], k


def judge(store: Store, *, backend: str = "auto", queue_id: str | None = None, set_id: str | None = None,
          max_cost: float | None = None) -> JudgedPreferences:
    """A pairwise judge on every pair people labelled, and its agreement with them beside theirs.

    Offline: the metric set that scored the most runs decides (`MetricPairJudge`), fitted on people's
    preferences of the other tasks (cross-fitted, `folds` in the figures); with an LLM, the model compares
    the two runs (`LLMPairJudge`)."""
    p = load(store, queue_id=queue_id)
    seen, unique = set(), []
    for a, b in zip(p["run_a"], p["run_b"], strict=True):  # a pair once, in the order it was first shown
        key = queues.pair_id(a, b)
        if key not in seen:
            seen.add(key)
            unique.append((a, b))
    b = choose_backend(store, backend, max_cost)
    folds = 0
    if b.llm is not None:
        j: MetricPairJudge | LLMPairJudge = LLMPairJudge(b.llm, lambda ids: load_runs(store, ids))
        verdicts = j.judge(unique)
    else:
        picked = _metric_set(store, set_id)
        if picked is None:
            raise LookupError("the offline pairwise judge reads a scored metric set; approve one and run libra score")
        j = MetricPairJudge(store, *picked)
        verdicts, folds = _cross_fitted(j, p, unique)
    return JudgedPreferences(j.backend, verdicts, {**judge_agreement(p, verdicts), "folds": folds})
