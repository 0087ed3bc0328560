"""Meta-evaluation: how much of what people said a metric set covers, and how much it adds.

A judge's ±1 verdicts on a run are its detected traits. Each grounded
aspect is matched to at most one trait of the same sign on the same run
(and actor) that is about the same thing.

- coverage = matched aspects / aspects
- redundancy = ±1 traits matched by no aspect / ±1 traits
- redundancy_all = verdicts matched by no aspect / all verdicts, N/A
  included (the variant AutoLibra's code reports)

"About the same thing" is decided by a matcher: `OfflineMatcher` compares the
aspect with the metric's centre (its examples' subject, verdict removed) and
accepts above a threshold calibrated on labelled (aspect, metric) pairs;
`LLMMatcher` asks a model, one call per run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, Field

from autolibra.aspects import Aspect
from metrics.definitions import MetricSet
from metrics.judges.base import Judgement
from metrics.llm.client import LLM, Request
from metrics.llm.prompts import DATA_NOTICE, data_block
from metrics.judges.trained import view_key


class Trait(NamedTuple):
    """One verdict of a judge on one run, as the meta-evaluation reads it.

    A named tuple, not a frozen dataclass: an induction makes one per run, metric and
    candidate (millions at 10k aspects), and a frozen dataclass took 2.5 times as long
    to make.
    """

    view: str
    metric_id: str
    value: int
    reason: str = ""


@dataclass(frozen=True)
class MetaEval:
    coverage: float
    redundancy: float
    redundancy_all: float
    aspects: int
    aspects_matched: int
    traits: int
    traits_matched: int
    verdicts: int
    matches: tuple[tuple[str, int], ...] = ()  # (aspect id, trait index)
    per_metric: dict = field(default_factory=dict)

    def row(self, **extra) -> dict:
        return {"coverage": self.coverage, "redundancy": self.redundancy, "redundancy_all": self.redundancy_all,
                "aspects": self.aspects, "traits": self.traits, **extra}


def traits_of(judgements: Sequence[Judgement], views_focus: Sequence[str | None],
              signed_only: bool = False) -> list[Trait]:
    """One trait per verdict; with `signed_only`, per +1 or -1 verdict (what matchers read).

    Signed only is for an induction's search: nearly every verdict is "not applicable",
    and `meta_evaluate` then takes how many verdicts there were from `verdicts_about`.
    """
    out = []
    for j, focus in zip(judgements, views_focus, strict=True):
        key = view_key(j.run_id, focus)
        out.extend([Trait(key, v.metric_id, v.value, v.reason) for v in j.verdicts if v.value or not signed_only])
    return out


def verdicts_about(aspects: Sequence[Aspect], judgements: Sequence[Judgement],
                   views_focus: Sequence[str | None]) -> int:
    """How many verdicts are on runs (or agents) the aspects are about: `meta_evaluate`'s scope."""
    views = {view_key(a.run_id, a.focus) for a in aspects}
    return sum(len(j.verdicts) for j, focus in zip(judgements, views_focus, strict=True)
               if view_key(j.run_id, focus) in views)


def _topic(a: Aspect) -> str:
    return a.metadata.get("topic") or a.behaviour


class OfflineMatcher:
    """Aspect and metric match when their subjects are close enough.

    `fit` calibrates the threshold on labelled pairs: (aspect, metric it
    belongs to) as positives, the same aspect with every other metric as
    negatives; the threshold maximising F1 is kept in `threshold_`.
    """

    def __init__(self, embedder, threshold: float | None = None):
        self.embedder = embedder
        self.threshold = threshold

    @property
    def bar(self) -> float:
        """The similarity from which a remark is about a metric: calibrated by `fit`, else as given, else 0.5."""
        return getattr(self, "threshold_", self.threshold if self.threshold is not None else 0.5)

    def metric_vectors(self, metric_set: MetricSet) -> dict[str, np.ndarray]:
        out = {}
        for m in metric_set.metrics:
            texts = [e.text for e in m.good + m.bad] or [m.name + ". " + m.explanation]
            topics = m.metadata.get("topics") or texts
            v = self.embedder.embed(list(topics)).mean(axis=0)
            out[m.metric_id] = v / (np.linalg.norm(v) + 1e-9)
        return out

    def similarities(self, aspects: Sequence[Aspect], metric_set: MetricSet) -> tuple[np.ndarray, list[str]]:
        mv = self.metric_vectors(metric_set)
        ids = list(mv)
        A = self.embedder.embed([_topic(a) for a in aspects]) if aspects else np.zeros((0, 1))  # noqa: N806
        M = np.vstack([mv[i] for i in ids]) if ids else np.zeros((0, A.shape[1]))  # noqa: N806
        return (A @ M.T if len(A) and len(M) else np.zeros((len(aspects), len(ids)))), ids

    def fit(self, aspects: Sequence[Aspect], metric_of: Sequence[str | None], metric_set: MetricSet) -> OfflineMatcher:
        S, ids = self.similarities(aspects, metric_set)  # noqa: N806
        pos, neg = [], []
        for i, m in enumerate(metric_of):
            if m is None or m not in ids:
                continue
            for j, mid in enumerate(ids):
                (pos if mid == m else neg).append(S[i, j])
        if not pos:
            self.threshold_ = self.threshold if self.threshold is not None else 0.5
            return self
        pos, neg = np.array(pos), np.array(neg)
        best, best_f1 = 0.5, -1.0
        for t in np.unique(np.round(np.concatenate([pos, neg]), 3)):
            tp = (pos >= t).sum()
            fp = (neg >= t).sum()
            fn = (pos < t).sum()
            f1 = 2 * tp / max(2 * tp + fp + fn, 1)
            if f1 > best_f1:
                best, best_f1 = float(t), f1
        self.threshold_ = best
        self.calibration_f1_ = best_f1
        return self

    def explain(self, aspects: Sequence[Aspect], traits: Sequence[Trait], metric_set: MetricSet) -> Counter:
        """Why aspects go unmatched: no metric about it, the judge said N/A, or the sign differs."""
        threshold = self.bar
        S, ids = self.similarities(aspects, metric_set)  # noqa: N806
        verdict = {(t.view, t.metric_id): t.value for t in traits}
        out: Counter = Counter()
        for i, a in enumerate(aspects):
            near = [ids[j] for j in np.argsort(-S[i]) if S[i, j] >= threshold]
            if not near:
                out["no metric about it"] += 1
                continue
            values = [verdict.get((view_key(a.run_id, a.focus), m)) for m in near]
            if a.sign in values:
                out["matched"] += 1
            elif all(v in (0, None) for v in values):
                out["judge said not applicable"] += 1
            else:
                out["judge gave the other sign"] += 1
        return out

    def match(self, aspects: Sequence[Aspect], traits: Sequence[Trait], metric_set: MetricSet) -> list[tuple[str, int]]:
        threshold = self.bar
        S, ids = self.similarities(aspects, metric_set)  # noqa: N806
        col = {m: j for j, m in enumerate(ids)}
        by_view: dict[str, list[int]] = defaultdict(list)
        for k, t in enumerate(traits):
            if t.value != 0 and t.metric_id in col:
                by_view[t.view].append(k)
        out = []
        for i, a in enumerate(aspects):
            best, best_s = None, threshold
            for k in by_view.get(view_key(a.run_id, a.focus), []):
                t = traits[k]
                s = S[i, col[t.metric_id]]
                if t.value == a.sign and s >= best_s:
                    best, best_s = k, s
            if best is not None:
                out.append((a.aspect_id, best))
        return out


class _Match(BaseModel):
    aspect: int
    trait: int


class _Matches(BaseModel):
    matches: list[_Match] = Field(default_factory=list)


MATCH_INSTRUCTIONS = """You check whether an evaluation found what people said about an agent run.

You get people's remarks (each praising or criticising one behaviour) and the traits an evaluator
detected (each a metric with +1 or -1). Match a remark to a trait when the trait is about the same
behaviour with the same sign. Each remark matches at most one trait; leave unmatched what has no match.

{notice}"""


class LLMMatcher:
    def __init__(self, llm: LLM):
        self.llm = llm

    def match(self, aspects: Sequence[Aspect], traits: Sequence[Trait], metric_set: MetricSet,
              progress: Callable[[int, int], None] | None = None) -> list[tuple[str, int]]:
        names = {m.metric_id: m for m in metric_set.metrics}
        views: dict[str, tuple[list[Aspect], list[int]]] = defaultdict(lambda: ([], []))
        for a in aspects:
            views[view_key(a.run_id, a.focus)][0].append(a)
        for k, t in enumerate(traits):
            if t.value != 0 and t.view in views:
                views[t.view][1].append(k)
        items = []
        for v, (asp, tks) in views.items():
            if not tks:
                continue
            remarks = "\n".join(f"{i}. ({'+1' if a.sign > 0 else '-1'}) {a.behaviour}" for i, a in enumerate(asp))
            found = "\n".join(
                f"{j}. ({'+1' if traits[k].value > 0 else '-1'}) {names[traits[k].metric_id].name}: "
                f"{names[traits[k].metric_id].explanation[:300]}"
                for j, k in enumerate(tks) if traits[k].metric_id in names)
            items.append((v, Request(purpose="match", tool_name="record_matches",
                                     tool_description="Record which remarks match which traits.", schema=_Matches,
                                     system=MATCH_INSTRUCTIONS.format(notice=DATA_NOTICE),
                                     user=data_block("remarks", remarks) + "\n\n" + data_block("traits", found))))
        res = self.llm.map(items, progress)
        out = []
        for v, (asp, tks) in views.items():
            r = res.get(v)
            if r is None or not r.ok:
                continue
            used = set()
            for mt in r.value.matches:
                if 0 <= mt.aspect < len(asp) and 0 <= mt.trait < len(tks) and mt.aspect not in used:
                    k = tks[mt.trait]
                    if traits[k].value == asp[mt.aspect].sign:
                        used.add(mt.aspect)
                        out.append((asp[mt.aspect].aspect_id, k))
        return out


def meta_evaluate(aspects: Sequence[Aspect], traits: Sequence[Trait], matches: Sequence[tuple[str, int]],
                  verdicts: int | None = None) -> MetaEval:
    """Coverage and redundancy of the traits against the aspects, given which match.

    `verdicts`: how many verdicts are in scope, when `traits` holds only the signed ones
    (`traits_of(..., signed_only=True)`, `verdicts_about`); by default every trait in scope.
    """
    views = {view_key(a.run_id, a.focus) for a in aspects}
    traits_in = [t for t in traits if t.view in views]  # only runs people commented on are counted
    index = {id(t): k for k, t in enumerate(traits)}
    in_scope = {index[id(t)] for t in traits_in}
    matches = [(a, k) for a, k in matches if k in in_scope]
    matched_aspects = {a for a, _ in matches}
    matched_traits = {k for _, k in matches}
    signed = [index[id(t)] for t in traits_in if t.value != 0]
    n_aspects = len(aspects)
    n_verdicts = len(traits_in) if verdicts is None else verdicts
    per_metric: dict[str, dict[str, int]] = defaultdict(lambda: {"traits": 0, "matched": 0})
    for k in signed:
        per_metric[traits[k].metric_id]["traits"] += 1
        per_metric[traits[k].metric_id]["matched"] += k in matched_traits
    return MetaEval(
        coverage=len(matched_aspects) / n_aspects if n_aspects else 0.0,
        redundancy=(sum(k not in matched_traits for k in signed) / len(signed)) if signed else 0.0,
        redundancy_all=(1 - len(matched_traits) / n_verdicts) if n_verdicts else 0.0,
        aspects=n_aspects, aspects_matched=len(matched_aspects), traits=len(signed),
        traits_matched=len(matched_traits & set(signed)), verdicts=n_verdicts,
        matches=tuple(matches), per_metric=dict(per_metric))


def label_recovery(aspects: Sequence[Aspect], labels: Sequence[int], metric_set: MetricSet, key: str,
                   min_precision: float = 0.5, min_recall: float = 0.2) -> dict[str, dict]:
    """Which expert categories (aspect.metadata["label"][key]) some metric recovers.

    A category is recovered by the metric whose aspects are mostly that category
    (precision) and that holds a fair share of the category's aspects (recall).
    """
    by_cluster = {m.metadata.get("cluster"): m for m in metric_set.metrics}
    gold = [(a.metadata.get("label") or {}).get(key) for a in aspects]
    totals = Counter(g for g in gold if g)
    out: dict[str, dict] = {}
    for c, m in by_cluster.items():
        members = [g for g, lab in zip(gold, labels, strict=True) if lab == c and g]
        if not members:
            continue
        top, n = Counter(members).most_common(1)[0]
        p, r = n / len(members), n / totals[top]
        if p >= min_precision and r >= min_recall and (top not in out or r > out[top]["recall"]):
            out[top] = {"metric": m.name, "metric_id": m.metric_id, "precision": round(p, 3), "recall": round(r, 3)}
    return out
