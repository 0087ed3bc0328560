"""Facets: the praised and the criticised side of one topic, as two metrics that know each other.

A judge gives one verdict per metric and run, and learns it from people's
remarks. A metric whose remarks are all praise (or all criticism) teaches it
only one sign: every run is then "+1" or "not raised", and its score over runs
is a constant that no release can move. Two facets of one topic, each the
other's sibling, learn both signs: praise of a topic on a run is the
criticism facet's +1 there, and the other way round.

Facets come about in two ways. A cluster in which people both praised and
criticised one topic is split in two (`split_mixed`). And two clusters that
each hold one side of a topic (people word praise and criticism differently,
"concise summary" and "wordy at the end", so they seldom share a cluster) are
linked (`pair_opposites`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

import numpy as np

from autolibra.clustering import centroids
from metrics.definitions import Metric, MetricSet

T = TypeVar("T")
Facets = dict[int, tuple[str, int]]  # cluster -> ("praise" or "criticism", its sibling cluster)


def split_mixed(labels: np.ndarray, signs: np.ndarray, min_side: int) -> tuple[np.ndarray, Facets]:
    """Each cluster with at least `min_side` praised and criticised aspects becomes two facets.

    People often praise one side of a topic and criticise another on the same
    run (in Sotopia-π the two raters of an agent give a dimension opposite signs
    nearly half the time): one metric can cover only one of them. Returns the
    new labels and, per facet, which side it is and its sibling; the criticised
    side takes a new label.
    """
    out, facets = labels.copy(), {}
    nxt = int(labels.max()) + 1 if len(labels) else 0
    for lab in sorted(set(labels.tolist()) - {-1}):
        m = labels == lab
        if min((m & (signs > 0)).sum(), (m & (signs < 0)).sum()) >= min_side:
            out[m & (signs < 0)] = nxt
            facets[int(lab)], facets[nxt] = ("praise", nxt), ("criticism", int(lab))
            nxt += 1
    return out, facets


def pair_opposites(X: np.ndarray, labels: np.ndarray, signs: np.ndarray, views: Sequence[str],  # noqa: N803
                   facets: Facets, min_similarity: float, min_size: int, max_minority: float = 0.2,
                   max_shared: float = 0.2) -> Facets:
    """Links for one-sided clusters: each to the closest cluster of the other side about the same topic.

    One-sided: at most `max_minority` of its remarks have the other sign. The
    topic is the same when the two clusters' mean vectors are at least
    `min_similarity` apart in cosine (embedders put a behaviour and its
    opposite close: they share a topic) and they are seldom raised on the same
    run (at most `max_shared` of the smaller one's runs): one topic's two sides
    are, by and large, not said of one run, while two topics often are.
    Clusters already facets, or smaller than `min_size`, are left alone. A
    cluster's sibling is the closest match, so one side may be the sibling of
    several clusters of the other (people word one side in several ways).
    """
    cents = centroids(X, labels)
    side: dict[int, int] = {}
    runs: dict[int, set[str]] = defaultdict(set)
    for lab in cents:
        if lab in facets:
            continue
        m = labels == lab
        pos, neg = int((m & (signs > 0)).sum()), int((m & (signs < 0)).sum())
        if pos + neg >= min_size and min(pos, neg) <= max_minority * (pos + neg):
            side[lab] = 1 if pos > neg else -1
    for lab, view in zip(labels.tolist(), views, strict=True):
        if lab in side:
            runs[lab].add(view)
    out: Facets = {}
    for lab, s in side.items():
        best, best_sim = None, min_similarity
        for other, t in side.items():
            if t == s:
                continue
            sim = float(cents[lab] @ cents[other])
            shared = len(runs[lab] & runs[other]) / max(1, min(len(runs[lab]), len(runs[other])))
            if sim >= best_sim and shared <= max_shared:
                best, best_sim = other, sim
        if best is not None:
            out[lab] = ("praise" if s > 0 else "criticism", best)
    return out


def as_facets(metrics: Sequence[Metric], facets: Facets) -> list[Metric]:
    """The metrics, each facet told which side it is and named its sibling (in its explanation and metadata)."""
    by_cluster = {m.metadata.get("cluster"): m for m in metrics}
    out = []
    for m in metrics:
        facet, sibling = facets.get(m.metadata.get("cluster"), (None, None))
        other = by_cluster.get(sibling)
        if other is None:
            out.append(m)
            continue
        praise = facet == "praise"
        note = (f" This is the side of the topic people praised; what they criticised about it is "
                f"“{other.name}”. +1 when the agent shows the praised behaviour, −1 when people "
                f"would criticise it here instead." if praise else
                f" This is the side of the topic people criticised; what they praised about it is "
                f"“{other.name}”. −1 when the agent shows the criticised behaviour, +1 when "
                f"people would praise it here instead.")
        out.append(replace(m, explanation=m.explanation + note,
                           metadata={**m.metadata, "facet": facet, "sibling": other.metric_id}))
    return out


def with_facets(labels: dict[tuple[str, str], T], metric_set: MetricSet) -> dict[tuple[str, str], T]:
    """A facet's verdict where people spoke only of its sibling: the sibling's sign (or its evidence steps).

    Praise of a topic on a run says the agent did well on it, so the criticism
    facet is +1 there, not "not applicable", and the other way round. Without
    this a facet only ever sees one sign, and its score over runs is constant.
    """
    out = dict(labels)
    for m in metric_set.metrics:
        sibling = m.metadata.get("sibling")
        if sibling:
            for (view, mid), sign in labels.items():
                if mid == sibling:
                    out.setdefault((view, m.metric_id), sign)
    return out
