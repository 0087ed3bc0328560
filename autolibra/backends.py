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
from autolibra.induce import _views, ground_cached, with_facets
from autolibra.locator import StepLocator
from autolibra.naming import LLMNamer, OfflineNamer
from metrics.backends import Backend
from metrics.definitions import MetricSet
from metrics.embeddings import Embedder, default_embedder
from metrics.judges.base import Judge
from metrics.judges.llm import LLMJudge
from metrics.judges.trained import TrainedJudge, view_key
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
    return InductionTools(backend.kind, backend.label, emb, OfflineGrounder(StepLocator(emb)),
                          OfflineNamer(embedder=emb), lambda: TrainedJudge(emb), lambda: OfflineMatcher(emb))


def fit_offline_judge(store: Store, metric_set: MetricSet, embedder: Embedder | None = None,
                      grounding_backend: str = "offline", min_similarity: float = 0.5) -> TrainedJudge:
    """A trained judge for any metric set, from the feedback people left in the store.

    Grounded aspects are labelled with the metric they are most about (when
    close enough); the judge learns each metric's verdict from those runs.
    """
    emb = embedder or default_embedder(store)
    feedback = load_feedback(store)
    aspects = load_aspects(store, grounding_backend, [f.feedback_id for f in feedback])
    if not aspects:
        runs = load_runs(store, sorted({f.run_id for f in feedback}))
        aspects, _ = ground_cached(store, feedback, runs, OfflineGrounder(StepLocator(emb)))
    matcher = OfflineMatcher(emb)
    S, ids = matcher.similarities(aspects, metric_set)  # noqa: N806
    labels: dict[tuple[str, str], list[int]] = {}
    for i, a in enumerate(aspects):
        if S.shape[1] and S[i].max() >= min_similarity:
            labels.setdefault((view_key(a.run_id, a.focus), ids[int(S[i].argmax())]), []).append(a.sign)
    runs = load_runs(store, sorted({a.run_id for a in aspects}))
    return TrainedJudge(emb).fit(_views(aspects, runs), metric_set,
                                 with_facets({k: (1 if sum(v) >= 0 else -1) for k, v in labels.items()}, metric_set))
