"""Which backends do the work: a language model when a key is set, offline methods otherwise.

Every result records which one produced it; offline results are labelled as
such wherever they are shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from autolibra.aspects import load_aspects, load_feedback
from autolibra.evaluation import LLMMatcher, OfflineMatcher
from autolibra.grounding import LLMGrounder, OfflineGrounder
from autolibra.locator import StepLocator
from autolibra.induce import _views, with_facets
from autolibra.naming import LLMNamer, OfflineNamer
from metrics.definitions import MetricSet
from metrics.embeddings import default_embedder
from metrics.judges.llm import LLMJudge
from metrics.llm.client import LLM, Budget, LLMConfig, api_key_available
from metrics.judges.trained import TrainedJudge, view_key
from traces.export import load_runs


@dataclass
class Backends:
    kind: str  # "llm" | "offline"
    label: str
    embedder: object
    grounder: object
    namer: object
    judge_factory: Callable[[], object]
    matcher_factory: Callable[[], object]
    llm: LLM | None = None


def choose(store, prefer: str = "auto", max_cost: float | None = None, config: LLMConfig | None = None) -> Backends:
    if prefer not in ("auto", "llm", "offline"):
        raise ValueError("backend must be auto, llm or offline")
    emb = default_embedder(store)
    use_llm = prefer == "llm" or (prefer == "auto" and api_key_available())
    if prefer == "llm" and not api_key_available():
        raise RuntimeError("the llm backend needs ANTHROPIC_API_KEY in the environment")
    if use_llm:
        llm = LLM(store, config or LLMConfig.from_env(), budget=Budget(max_cost))
        return Backends("llm", f"LLM ({llm.config.model})", emb, LLMGrounder(llm), LLMNamer(llm),
                        lambda: LLMJudge(llm), lambda: LLMMatcher(llm), llm)
    return Backends("offline", "offline (embeddings and classifiers; set ANTHROPIC_API_KEY for the LLM backend)",
                    emb, OfflineGrounder(StepLocator(emb)), OfflineNamer(embedder=emb),
                    lambda: TrainedJudge(emb), lambda: OfflineMatcher(emb))


def fit_offline_judge(store, metric_set: MetricSet, embedder=None, grounding_backend: str = "offline",
                      min_similarity: float = 0.5) -> TrainedJudge:
    """A trained judge for any metric set, from the feedback people left in the store.

    Grounded aspects are labelled with the metric they are most about (when
    close enough); the judge learns each metric's verdict from those runs.
    """
    emb = embedder or default_embedder(store)
    feedback = load_feedback(store)
    aspects = load_aspects(store, grounding_backend, [f.feedback_id for f in feedback])
    if not aspects:
        from autolibra.induce import ground_cached

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
