"""Proactivity reward models, composed: train with grouped cross-validation, evaluate, score streams."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from metrics.definitions import MetricSet
from metrics.embeddings import default_embedder
from metrics.scoring import ScoreSummary
from pipa.proactive import artefacts
from pipa.proactive import data as pdata
from pipa.proactive.evaluate import cross_validate, reward_model_metrics
from pipa.proactive.reward import EmbeddingRewardModel, FineTunedRewardModel
from pipa.proactive.scoring import agent_report, score_streams
from traces.store import Store

KINDS = ("embedding-lr", "finetuned-minilm")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Trained:
    manifest: dict[str, Any]
    kind: str
    proposals: int
    cv: dict[str, Any] | None  # grouped cross-validation, with `accept_all` and `people` beside the model


def train(store: Store, data: Path | None = None, *, kind: str = "embedding-lr", name: str = "proactive-reward",
          folds: int = 4, epochs: int = 3, progress: Progress | None = None) -> Trained:
    """Train a reward model on labelled proposals (a train_data.jsonl, or the store's), cross-validate, save.

    Raises ValueError for an unknown kind or when there are no labelled proposals.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose {' or '.join(KINDS)}")
    proposals = pdata.load_jsonl(data) if data else pdata.from_store(store)
    if not proposals:
        raise ValueError("no labelled proposals; pass a train_data.jsonl or ingest one first")
    emb = default_embedder(store)

    def make() -> EmbeddingRewardModel | FineTunedRewardModel:
        if kind == "embedding-lr":
            return EmbeddingRewardModel(embedder=emb)
        return FineTunedRewardModel(epochs=epochs,
                                    progress=(lambda d, t: progress("fine-tune", d, t)) if progress else None)

    cv = cross_validate(make, proposals, folds,
                        progress=(lambda d, t: progress("cv folds", d, t)) if progress else None) \
        if folds > 1 else None
    model = make().fit(proposals)
    metrics = {"cv": {k: v for k, v in cv.items() if k != "probabilities"}} if cv else {}
    manifest = artefacts.save(store, model, name, data_hash=pdata.data_hash(proposals), metrics=metrics)
    return Trained(manifest, kind, len(proposals), cv)


@dataclass(frozen=True)
class Evaluated:
    model_id: str
    model: dict[str, Any]
    accept_all: dict[str, Any]


def evaluate(store: Store, data: Path, *, name: str = "proactive-reward", version: int | None = None) -> Evaluated:
    """ProactiveBench's measures of a saved reward model on labelled proposals, beside accepting everything."""
    model = artefacts.load(store, name, version, embedder=default_embedder(store))
    proposals = pdata.load_jsonl(data)
    return Evaluated(model.model_id_, reward_model_metrics(proposals, model.predict(proposals)),
                     reward_model_metrics(proposals, [True] * len(proposals)))


@dataclass(frozen=True)
class StreamsScored:
    metric_set: MetricSet
    summary: ScoreSummary
    report: pd.DataFrame  # TP/FP/TN/FN and rates per agent


def score(store: Store, *, name: str = "proactive-reward", version: int | None = None, agent: str | None = None,
          progress: Callable[[int, int], None] | None = None) -> StreamsScored:
    """Score stored event streams with a saved reward model. KeyError when there is no such model."""
    model = artefacts.load(store, name, version, embedder=default_embedder(store))
    ms, res = score_streams(store, model, agent=agent, progress=progress)
    return StreamsScored(ms, res, agent_report(store, ms.set_id))
