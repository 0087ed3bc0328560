"""AutoLibra's collaborators on a chosen backend: grounder, namer, judge and matcher.

The backend itself (LLM or offline, budget, embedder) is chosen in
`metrics.backends`; this module only says what AutoLibra builds on each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from autolibra.aspects import load_aspects
from autolibra.evaluation import LLMMatcher, OfflineMatcher
from autolibra.grounding import LLMGrounder, OfflineGrounder
from autolibra.induce import _views, evidence_of, ground_cached, labels_of
from autolibra.locator import StepLocator
from autolibra.naming import LLMNamer, OfflineNamer
from metrics.backends import Backend
from metrics.definitions import MetricSet
from metrics.embeddings import Embedder, default_embedder
from autolibra import people_scores
from metrics.judges.base import Judge, RunView
from metrics.judges.graded import GradedJudge
from metrics.judges.llm import LLMJudge
from metrics.judges.similarity import SimilarityJudge
from metrics.judges.trained import JudgeMemo, TrainedJudge, view_key
from traces.annotation.feedback import load as load_feedback
from traces.export import load_runs
from traces.store import Store


@dataclass(frozen=True)
class InductionTools:
    """What `autolibra.induce` is built from; every part records its backend."""

    kind: str  # "llm" | "offline"
    label: str
    embedder: Embedder
    grounder: LLMGrounder | OfflineGrounder
    namer: LLMNamer | OfflineNamer
    judge_factory: Callable[[], Judge]
    matcher_factory: Callable[[], LLMMatcher | OfflineMatcher]


def induction_tools(backend: Backend) -> InductionTools:
    emb, llm = backend.embedder, backend.llm
    if llm is not None:
        return InductionTools(backend.kind, backend.label, emb, LLMGrounder(llm), LLMNamer(llm),
                              lambda: LLMJudge(llm), lambda: LLMMatcher(llm))
    memo = JudgeMemo()  # the candidates of an induction judge the same runs with many of the same metrics
    return InductionTools(backend.kind, backend.label, emb, OfflineGrounder(StepLocator(emb)),
                          OfflineNamer(embedder=emb), lambda: TrainedJudge(emb, memo=memo), lambda: OfflineMatcher(emb))


def fit_offline_judge(store: Store, metric_set: MetricSet, embedder: Embedder | None = None,
                      grounding_backend: str = "offline", min_similarity: float = 0.5) -> GradedJudge:
    """The offline judge for any metric set, from the feedback people left in the store.

    Grounded aspects are labelled with the metric they are most about (when
    close enough). A metric whose remarks go with a score people gave learns
    that score (`GradedJudge`), or is listed as needing an LLM judge when the
    run does not tell it; the others learn their verdict from the signs.
    """
    emb = embedder or default_embedder(store)
    feedback = load_feedback(store)
    aspects = load_aspects(store, grounding_backend, [f.feedback_id for f in feedback])
    if not aspects:
        runs = load_runs(store, sorted({f.run_id for f in feedback}))
        aspects, _ = ground_cached(store, feedback, runs, OfflineGrounder(StepLocator(emb)))
    matcher = OfflineMatcher(emb)
    S, ids = matcher.similarities(aspects, metric_set)  # noqa: N806
    metric_of = [ids[int(S[i].argmax())] if S.shape[1] and S[i].max() >= min_similarity else None
                 for i in range(len(aspects))]
    runs = load_runs(store, sorted({a.run_id for a in aspects} | {f.run_id for f in feedback}))
    if not runs:
        # no note to learn from: each metric is judged by its own good and bad examples
        return GradedJudge(SimilarityJudge(emb)).fit([], metric_set, {}, {})
    signs = TrainedJudge(emb).fit(_views(aspects, runs), metric_set, labels_of(aspects, metric_of, metric_set),
                                  evidence=evidence_of(aspects, metric_of, metric_set))
    return fit_graded_judge(aspects, metric_of, feedback, runs, metric_set, signs)


def fit_graded_judge(aspects, metric_of, notes, runs, metric_set: MetricSet, fallback: Judge) -> GradedJudge:
    """A judge that learns each metric from the score people gave that its remarks go with."""
    siblings = {m.metric_id: m.metadata["sibling"] for m in metric_set.metrics if m.metadata.get("sibling")}
    keys = people_scores.score_keys(aspects, metric_of, notes, siblings)
    views = {view_key(n.run_id, n.focus): RunView(n.run_id, runs[n.run_id].steps, runs[n.run_id].task, n.focus)
             for n in notes if n.run_id in runs}
    return GradedJudge(fallback).fit(list(views.values()), metric_set, people_scores.targets(notes, keys), keys,
                                     people_scores.praised_share(aspects, metric_of))
