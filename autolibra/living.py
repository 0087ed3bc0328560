"""Living metrics: does an approved set still cover what people write, and what should change.

Coverage of new feedback is induction's coverage (an aspect is covered when a
verdict of the same sign on its run is about the same thing) measured on the
remarks written since the set was approved, week by week, with Wilson's
interval. The remarks no metric covers are clustered and named by the induction
pipeline into metrics to add; metrics whose subject is now one remark stream
(two metrics most new remarks match alike) are proposed for merging; metrics no
new remark matches, when there are enough new remarks to say so, for
retirement. Each change carries the remarks behind it and its effect on coverage
and redundancy of the new remarks.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import pandas as pd
from scipy import stats

from autolibra.aspects import Aspect
from autolibra.clustering import AspectClusterer
from autolibra.evaluation import LLMMatcher, MetaEval, OfflineMatcher, Trait, meta_evaluate
from autolibra.clustering import merge_close
from autolibra.induce import _views, evidence_of, labels_of
from autolibra.naming import LLMNamer, OfflineNamer
from metrics.definitions import Metric, MetricSet
from metrics.embeddings import Embedder
from metrics.judges.base import Judge
from metrics.judges.trained import view_key
from traces.model import Run

def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson's 95% interval for k of n (honest at the small counts of one week); NaN for none."""
    if n == 0:
        return math.nan, math.nan
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class NewCoverage:
    """Coverage of the remarks written since `since` by one set version."""
    set_id: str
    version: int
    since: datetime | None
    evaluation: MetaEval
    weekly: pd.DataFrame  # week, remarks, covered, coverage, lo, hi
    aspects: tuple[Aspect, ...]
    uncovered: tuple[Aspect, ...]
    # why remarks went uncovered: no metric about it, the judge said not applicable, or the other sign
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        return self.evaluation.coverage


def coverage_of_new(metric_set: MetricSet, aspects: Sequence[Aspect], traits: Sequence[Trait],
                    matcher: OfflineMatcher | LLMMatcher,
                    written_at: dict[str, datetime], since: datetime | None) -> NewCoverage:
    """Coverage of `aspects` (new remarks) by the set's verdicts `traits`, overall and per week written."""
    ev = meta_evaluate(aspects, traits, matcher.match(aspects, traits, metric_set))
    matched = {a for a, _ in ev.matches}
    rows: dict[pd.Timestamp, list[int]] = defaultdict(lambda: [0, 0])
    for a in aspects:
        t = written_at.get(a.feedback_id)
        if t is None:
            continue
        week = pd.Timestamp(t).to_period("W-SUN").start_time
        rows[week][0] += 1
        rows[week][1] += a.aspect_id in matched
    weekly = pd.DataFrame([{"week": w, "remarks": n, "covered": k, "coverage": k / n,
                            "lo": wilson(k, n)[0], "hi": wilson(k, n)[1]} for w, (n, k) in sorted(rows.items())],
                          columns=["week", "remarks", "covered", "coverage", "lo", "hi"])
    explain = getattr(matcher, "explain", None)
    reasons = dict(explain(aspects, traits, metric_set)) if explain is not None and aspects else {}
    return NewCoverage(metric_set.set_id, metric_set.version, since, ev, weekly, tuple(aspects),
                       tuple(a for a in aspects if a.aspect_id not in matched), reasons)


@dataclass(frozen=True)
class Change:
    action: str  # "add" | "merge" | "retire"
    metric_ids: tuple[str, ...]  # the set's metrics it concerns (none for an added one)
    metric: Metric | None  # the added or merged metric
    remarks: tuple[str, ...]  # the new remarks behind it (up to ten)
    coverage_delta: float  # on the new remarks, this change alone against the set as approved
    redundancy_delta: float

    @property
    def title(self) -> str:
        if self.action == "add" and self.metric is not None:
            return f"add “{self.metric.name}”"
        if self.action == "merge" and self.metric is not None:
            return f"merge {', '.join(self.metric_ids)} into “{self.metric.name}”"
        return f"retire {', '.join(self.metric_ids)}"


@dataclass(frozen=True)
class Proposal:
    base: MetricSet
    changes: tuple[Change, ...]
    before: MetaEval
    after: MetaEval  # every change applied
    feedback_ids: tuple[str, ...] = ()  # the new remarks' notes, recorded with the version they led to

    def metric_set(self, accepted: Sequence[int] | None = None,
                   edits: dict[str, dict[str, str]] | None = None) -> MetricSet:
        """The proposed set with the accepted changes (default: all) and people's edits
        (metric id → new name and/or explanation) applied."""
        chosen = [c for i, c in enumerate(self.changes) if accepted is None or i in set(accepted)]
        return apply_changes(self.base, chosen, edits)


def apply_changes(base: MetricSet, changes: Sequence[Change], edits: dict[str, dict[str, str]] | None = None) -> MetricSet:
    gone = {m for c in changes if c.action in ("merge", "retire") for m in c.metric_ids}
    metrics = [m for m in base.metrics if m.metric_id not in gone]
    metrics += [c.metric for c in changes if c.action in ("add", "merge") and c.metric is not None]
    if edits:
        metrics = [replace(m, name=edits.get(m.metric_id, {}).get("name", m.name),
                           explanation=edits.get(m.metric_id, {}).get("explanation", m.explanation))
                   for m in metrics]
    return replace(base, metrics=tuple(metrics))


def _traits_for(base_traits: Sequence[Trait], changes: Sequence[Change], added: dict[str, list[Trait]]) -> list[Trait]:
    """The verdicts the changed set would give: kept metrics' own, a merged metric's from its parts
    (it fires where any part fired, with the part's sign), an added metric's from its fitted judge."""
    rename = {m: c.metric.metric_id for c in changes if c.action == "merge" and c.metric for m in c.metric_ids}
    retired = {m for c in changes if c.action == "retire" for m in c.metric_ids}
    out: dict[tuple[str, str], Trait] = {}
    for t in base_traits:
        if t.metric_id in retired:
            continue
        mid = rename.get(t.metric_id, t.metric_id)
        key = (t.view, mid)
        if key not in out or (out[key].value == 0 and t.value != 0):
            out[key] = t._replace(metric_id=mid)
    for c in changes:
        if c.action == "add" and c.metric is not None:
            for t in added.get(c.metric.metric_id, []):
                out[(t.view, t.metric_id)] = t
    return list(out.values())


def propose(base: MetricSet, new: NewCoverage, base_traits: Sequence[Trait], runs: dict[str, Run], *,
            embedder: Embedder, namer: OfflineNamer | LLMNamer, judge_factory: Callable[[], Judge],
            matcher: OfflineMatcher,
            min_cluster_size: int = 5, merge_at: float | None = 0.65, merge_similarity: float = 0.9,
            retire_after: int = 30, random_state: int = 0) -> Proposal:
    """Changes to `base` from the new remarks: metrics for clusters of the uncovered ones, merges of
    near-identical metrics, retirements of metrics no new remark matches."""
    aspects = list(new.aspects)
    changes: list[Change] = []
    added_traits: dict[str, list[Trait]] = {}

    # 1. add: the uncovered remarks no metric is about, clustered and named as induction does. A remark
    # close to a metric that its judge missed is the judge's miss, not a metric missing.
    uncovered = list(new.uncovered)
    if uncovered and base.metrics:
        S0, _ = matcher.similarities(uncovered, base)  # noqa: N806
        uncovered = [a for a, s in zip(uncovered, S0.max(axis=1), strict=True) if s < matcher.bar]
    if len(uncovered) >= min_cluster_size:
        X = embedder.embed([a.metadata.get("topic") or a.behaviour for a in uncovered])  # noqa: N806
        labels = AspectClusterer(min_cluster_size=min_cluster_size, n_components=min(16, max(2, len(uncovered) - 2)),
                                 random_state=random_state).fit(X).labels_
        if merge_at:  # praise and criticism of one behaviour are one metric, as induction merges them
            labels = merge_close(X, labels, merge_at)
        clusters: dict[int, list[tuple[Aspect, float]]] = defaultdict(list)
        for i, (a, lab) in enumerate(zip(uncovered, labels, strict=True)):
            if lab >= 0:
                clusters[int(lab)].append((a, 1.0 - i * 1e-6))
        taken = {m.metric_id for m in base.metrics}
        proposed = [m for m in namer.define(dict(clusters), salt=f"{base.set_id}-v{base.version}-new")
                    if m.metric_id not in taken]
        if proposed:
            topics = {c: [a.metadata.get("topic", a.behaviour) for a, _ in members][:30]
                      for c, members in clusters.items()}
            proposed = [replace(m, metadata={**m.metadata, "topics": topics.get(int(m.metadata.get("cluster", -1)), []),
                                             "proposed_from": "uncovered new feedback"}) for m in proposed]
            by_cluster = {m.metadata.get("cluster"): m for m in proposed}
            metric_of = [by_cluster[int(lab)].metric_id if lab >= 0 and int(lab) in by_cluster else None
                         for lab in labels]
            new_set = replace(base, metrics=tuple(proposed))
            views = _views(uncovered, runs)
            judge = judge_factory()
            if hasattr(judge, "fit"):
                judge.fit(views, new_set, labels_of(uncovered, metric_of, new_set),
                          evidence=evidence_of(uncovered, metric_of, new_set))
            all_views = _views(aspects, runs)
            for w, j in zip(all_views, judge.judge(all_views, new_set), strict=True):
                for v in j.verdicts:
                    added_traits.setdefault(v.metric_id, []).append(
                        Trait(view_key(j.run_id, w.focus), v.metric_id, v.value, v.reason))
            for m in proposed:
                members = clusters[m.metadata["cluster"]]
                changes.append(Change("add", (), m, tuple(a.behaviour for a, _ in members[:10]), 0.0, 0.0))

    # 2. merge: metrics whose subjects are the same (their centres nearly identical)
    vectors = matcher.metric_vectors(base)
    ids = list(vectors)
    merged: set[str] = set()
    if len(ids) > 1:
        V = np.vstack([vectors[i] for i in ids])  # noqa: N806
        S = V @ V.T  # noqa: N806
        np.fill_diagonal(S, -1)
        for i, j in zip(*np.where(np.triu(S) >= merge_similarity), strict=True):
            first, second = ids[int(i)], ids[int(j)]
            if first in merged or second in merged:
                continue
            merged.update([first, second])
            ma, mb = base.get(first), base.get(second)
            metric = replace(ma, metric_id=f"{first}+{second}"[:64], good=ma.good + mb.good, bad=ma.bad + mb.bad,
                             metadata={**ma.metadata, "topics": list(ma.metadata.get("topics", []))
                                       + list(mb.metadata.get("topics", [])), "merged_from": [first, second]})
            near: np.ndarray = matcher.similarities(aspects, replace(base, metrics=(metric,)))[0][:, 0] \
                if aspects else np.zeros(0)
            remarks = tuple(aspects[k].behaviour for k in np.argsort(-near)[:10])
            changes.append(Change("merge", (first, second), metric, remarks, 0.0, 0.0))

    # 3. retire: no new remark is about it, among enough new remarks to tell
    if len(aspects) >= retire_after:
        S, sids = matcher.similarities(aspects, base)  # noqa: N806
        about = set(np.array(sids)[(matcher.bar <= S).any(axis=0)]) if len(sids) else set()
        for mid in sids:
            if mid not in about and mid not in merged:
                changes.append(Change("retire", (mid,), None, (), 0.0, 0.0))

    # each change's effect alone, and all of them together, on the new remarks
    def evaluate(chosen: Sequence[Change]) -> MetaEval:
        ms = apply_changes(base, chosen)
        traits = _traits_for(base_traits, chosen, added_traits)
        return meta_evaluate(aspects, traits, matcher.match(aspects, traits, ms))

    before = new.evaluation
    changes = [replace(c, coverage_delta=(e := evaluate([c])).coverage - before.coverage,
                       redundancy_delta=e.redundancy - before.redundancy) for c in changes]
    return Proposal(base, tuple(changes), before, evaluate(changes),
                    tuple(sorted({a.feedback_id for a in aspects})))
