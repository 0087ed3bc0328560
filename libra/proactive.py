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
    contexts: int  # distinct contexts (event streams so far) evaluated on
    seen_in_training: int | None  # of those, how many the `against` training data holds (None: not checked)

    @property
    def held_out(self) -> bool | None:
        """True only when checked against the training data and no context occurs in it."""
        return None if self.seen_in_training is None else self.seen_in_training == 0


def _context(p: pdata.Proposal) -> tuple[str, ...]:
    return tuple(e.text for e in p.events)


def evaluate(store: Store, data: Path, *, name: str = "proactive-reward", version: int | None = None,
             against: Path | None = None) -> Evaluated:
    """ProactiveBench's measures of a saved reward model on labelled proposals, beside accepting everything.

    Every proposal must carry its label (ValueError otherwise: score unlabelled
    records with `score_records`). With `against` (the model's training data),
    says how many evaluation contexts also occur there; a result is held out
    only when none does.
    """
    proposals = pdata.load_jsonl(data)
    unlabelled = sum(p.valid is None for p in proposals)
    if not proposals or unlabelled:
        raise ValueError(f"{data}: {unlabelled if proposals else 'no'} of {len(proposals)} proposals carry no label "
                         "('valid'); evaluating needs labels. Score unlabelled records with "
                         "`libra proactive score --records FILE`")
    model = artefacts.load(store, name, version, embedder=default_embedder(store))
    contexts = {_context(p) for p in proposals}
    seen = None
    if against is not None:
        train_contexts = {_context(p) for p in pdata.load_jsonl(against)}
        seen = len(contexts & train_contexts)
    return Evaluated(model.model_id_, reward_model_metrics(proposals, model.predict(proposals)),
                     reward_model_metrics(proposals, [True] * len(proposals)), len(contexts), seen)


def score_records(store: Store, data: Path, *, name: str = "proactive-reward",
                  version: int | None = None) -> list[dict[str, Any]]:
    """A reward model's verdict on each proposal record of a file, labelled or not, in file order."""
    model = artefacts.load(store, name, version, embedder=default_embedder(store))
    proposals = pdata.load_jsonl(data)
    if not proposals:
        return []
    prob = model.predict_proba(proposals)
    keep = model.predict(proposals)
    return [{"source": p.source, "proposal": p.task, "accept": bool(k), "p_accept": round(float(q), 4),
             "label": p.valid} for p, k, q in zip(proposals, keep, prob, strict=True)]


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
