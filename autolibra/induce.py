"""Metric induction from open-ended feedback, end to end.

    feedback ─ground→ aspects ─embed→ ─cluster (HDBSCAN)→ metrics ─judge→ traits ─match→ coverage, redundancy

Feedback is split by run into an induction part and a held-out part. The
granularity of the metric set is searched (HDBSCAN's minimum cluster size,
plus a second pass that turns aspects left uncovered into further metrics,
and whether a topic people both praised and criticised becomes one metric or
two facets);
every candidate is judged and meta-evaluated on both parts, the candidate on
the induction part's coverage–redundancy frontier with the best balance is
chosen, and the whole curve is kept. Held-out figures never steer the
choice.
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from autolibra.facets import Facets, as_facets, pair_opposites, split_mixed, with_facets
from autolibra.frontier import frontier_frame, pareto
from autolibra.aspects import Aspect, load_aspects, save_aspects
from traces.annotation.feedback import load as load_feedback
from traces.model import Feedback
from autolibra.clustering import AspectClusterer, centroids, refine
from autolibra.evaluation import MetaEval, OfflineMatcher, meta_evaluate, traits_of, verdicts_about
from autolibra.grounding import ground
from metrics.definitions import MetricSet
from metrics.judges.base import RunView
from metrics.judges.trained import view_key
from traces.export import load_runs
from traces.model import Run

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class InduceConfig:
    min_cluster_sizes: tuple[int, ...] = (5, 8, 12)
    merge_thresholds: tuple[float | None, ...] = (None, 0.75, 0.65)
    absorb_thresholds: tuple[float | None, ...] = (None, 0.5)
    split_mixed: tuple[bool, ...] = (False, True)
    # link a one-sided cluster to the other side of its topic (autolibra.facets.pair_opposites) when
    # their mean vectors are this close; None: never. 0.5 separates the demo's same-behaviour pairs
    # (0.44-0.90) from the rest (mean 0.16) with few mistakes; not tuned on any other corpus.
    pair_at: float | None = 0.4
    max_redundancy: float | None = None  # choose by coverage at most this redundant, not by balance
    n_components: int = 16
    min_samples: int | None = None
    holdout: float = 0.3
    add_uncovered: bool = True
    max_examples: int = 5
    random_state: int = 0
    # Above this many induction aspects, the granularity search judges and evaluates each
    # candidate on the aspects of a sample of runs (this many, about), and only the chosen
    # candidate on all of them: the search's cost stops growing with the feedback.
    search_aspects: int | None = 3000


@dataclass
class Candidate:
    params: dict
    metric_set: MetricSet
    train: MetaEval
    heldout: MetaEval
    labels: np.ndarray
    clusterer: AspectClusterer
    evaluated_on: int | None = None  # aspects of the induction part it was judged on, when a sample
    matcher_threshold: float | None = None  # the offline matcher's calibrated bar, reused on new feedback


# what building one candidate goes through, each reported as candidates done of all
CANDIDATE_STAGES = ("name", "fit judge", "evaluate")
MAP_POINTS = 3000  # aspects kept for the app's map


@dataclass
class Induction:
    metric_set: MetricSet
    chosen: Candidate
    candidates: list[Candidate]
    train_aspects: list[Aspect]
    heldout_aspects: list[Aspect]
    vectors: np.ndarray  # train aspects' embeddings, in order
    failures: list[tuple[str, str]] = field(default_factory=list)

    def frontier(self) -> pd.DataFrame:
        return frontier_frame(frontier_rows(self.candidates), self.chosen.params)

    def aspects_frame(self) -> pd.DataFrame:
        """Train aspects with their metric and a 2-D projection, for the aspect map."""
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=0).fit_transform(self.vectors) if len(self.vectors) > 2 else \
            np.zeros((len(self.vectors), 2))
        by_cluster = {m.metadata.get("cluster"): m.name for m in self.metric_set.metrics}
        return pd.DataFrame({
            "x": xy[:, 0], "y": xy[:, 1], "aspect": [a.bullet for a in self.train_aspects],
            "sign": ["praise" if a.sign > 0 else "criticism" for a in self.train_aspects],
            "metric": [by_cluster.get(int(c), "(not covered)") for c in self.chosen.labels],
            "run_id": [a.run_id for a in self.train_aspects],
        })

    def summary(self) -> dict:
        c = self.chosen
        return {"metrics": len(self.metric_set.metrics), "aspects_train": len(self.train_aspects),
                "aspects_heldout": len(self.heldout_aspects), "params": c.params,
                "train": c.train.row(), "heldout": c.heldout.row(), "failed_feedback": len(self.failures)}


def split_by_run(feedback: Sequence[Feedback], holdout: float, random_state: int) -> tuple[list, list]:
    runs = sorted({f.run_id for f in feedback})
    rng = random.Random(random_state)
    rng.shuffle(runs)
    cut = int(round(len(runs) * holdout))
    held = set(runs[:cut])
    return [f for f in feedback if f.run_id not in held], [f for f in feedback if f.run_id in held]


def ground_cached(store, feedback: Sequence[Feedback], runs: dict[str, Run], grounder,
                  progress: Progress | None = None) -> tuple[list[Aspect], list[tuple[str, str]]]:
    """Aspects for the feedback, grounding only feedback this backend has not grounded yet."""
    backend = grounder.backend
    have = load_aspects(store, backend, [f.feedback_id for f in feedback]) if store is not None else []
    done = {a.feedback_id for a in have}
    todo = [(f, runs[f.run_id]) for f in feedback if f.feedback_id not in done and f.run_id in runs]
    new, failed = ground(todo, grounder, (lambda d, t: progress("ground", d, t)) if progress else None)
    if store is not None and new:
        save_aspects(store, new, backend)
    return have + new, failed


def _views(aspects: Sequence[Aspect], runs: dict[str, Run]) -> list[RunView]:
    seen, out = set(), []
    for a in aspects:
        k = view_key(a.run_id, a.focus)
        if k in seen or a.run_id not in runs:
            continue
        seen.add(k)
        r = runs[a.run_id]
        out.append(RunView(a.run_id, r.steps, r.task, a.focus))
    return out


def labels_of(aspects: Sequence[Aspect], metric_of: Sequence[str | None],
            metric_set: MetricSet | None = None) -> dict[tuple[str, str], int]:
    votes: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for a, m in zip(aspects, metric_of, strict=True):
        if m is not None:
            votes[(view_key(a.run_id, a.focus), m)][a.sign] += 1
    labels = {k: (1 if c[1] >= c[-1] else -1) for k, c in votes.items()}
    return with_facets(labels, metric_set) if metric_set is not None else labels


def evidence_of(aspects: Sequence[Aspect], metric_of: Sequence[str | None],
              metric_set: MetricSet | None = None) -> dict[tuple[str, str], tuple[int, ...]]:
    """(view key, metric id) -> the steps people pointed at in its remarks (a facet's: its sibling's too)."""
    found: dict[tuple[str, str], set[int]] = defaultdict(set)
    for a, m in zip(aspects, metric_of, strict=True):
        if m is not None:
            found[(view_key(a.run_id, a.focus), m)].update(a.steps)
    out = {k: tuple(sorted(v)) for k, v in found.items() if v}
    return with_facets(out, metric_set) if metric_set is not None else out


def scenario_specific(tasks: Sequence[str | None], corpus_tasks: int, share: float = 0.8) -> str | None:
    """The task a cluster's remarks nearly all come from, when the corpus has several tasks and it does."""
    named = [t for t in tasks if t]
    if corpus_tasks < 3 or len(named) < 5:
        return None
    top, n = Counter(named).most_common(1)[0]
    return top if n >= share * len(named) else None


def base_labels(min_cluster_size: int, X: np.ndarray, config: InduceConfig) -> tuple[np.ndarray, AspectClusterer]:  # noqa: N803
    """HDBSCAN's clusters at one size, and a second, finer pass over the aspects it left out.

    The expensive part of a granularity point, shared by every refinement of that size.
    """
    clusterer = AspectClusterer(min_cluster_size=min_cluster_size, min_samples=config.min_samples,
                                n_components=config.n_components, random_state=config.random_state).fit(X)
    labels = clusterer.labels_.copy()
    if config.add_uncovered and (labels == -1).sum() >= 4:
        # aspects no cluster took get a second, finer pass: metrics for what is still uncovered
        noise = np.where(labels == -1)[0]
        second = AspectClusterer(min_cluster_size=max(2, min_cluster_size // 2),
                                 n_components=config.n_components, random_state=config.random_state).fit(X[noise])
        offset = labels.max() + 1
        for i, lab in zip(noise, second.labels_, strict=True):
            if lab >= 0:
                labels[i] = offset + lab
    return labels, clusterer


def cluster_labels(params: dict, X: np.ndarray, config: InduceConfig) -> tuple[np.ndarray, AspectClusterer]:  # noqa: N803
    """Cluster labels for one point of the granularity search (-1: not covered)."""
    labels, clusterer = base_labels(params["min_cluster_size"], X, config)
    return refine(labels, X, params), clusterer


def build_candidate(params: dict, aspects: list[Aspect], X: np.ndarray, heldout: list[Aspect],  # noqa: N803
                    runs: dict[str, Run], config: InduceConfig, namer, embedder, judge_factory,
                    matcher_factory, set_id: str, labels: np.ndarray | None = None,
                    clusterer: AspectClusterer | None = None, stage: Callable[[str], None] | None = None,
                    sample: tuple[Sequence[int], list[Aspect]] | None = None) -> Candidate:
    """Metrics from a clustering (computed here unless `labels` are given), judged and meta-evaluated.

    `stage(name)` is told as each stage starts: naming, fitting the judge, evaluating.
    `sample`: (indices of the induction aspects, held-out aspects) to judge and evaluate on
    instead of all of them.
    """
    stage = stage or (lambda name: None)
    if labels is None:
        labels, clusterer = cluster_labels(params, X, config)
    facets: Facets = {}
    signs = np.array([a.sign for a in aspects])
    min_side = max(3, params["min_cluster_size"] // 2)
    if params.get("split_mixed"):
        labels, facets = split_mixed(labels, signs, min_side)
    if config.pair_at is not None:
        facets |= pair_opposites(X, labels, signs, [view_key(a.run_id, a.focus) for a in aspects], facets,
                                 config.pair_at, min_side)
    cents = centroids(X, labels)
    clusters: dict[int, list[tuple[Aspect, float]]] = defaultdict(list)
    for i, (a, lab) in enumerate(zip(aspects, labels, strict=True)):
        if lab >= 0:
            clusters[int(lab)].append((a, float(X[i] @ cents[int(lab)])))
    stage("name")
    metrics = namer.define(dict(clusters), salt=set_id)
    corpus_tasks = len({r.task for r in runs.values() if r.task})
    by_cluster = {}
    for m in metrics:
        c = m.metadata.get("cluster")
        topics = [a.metadata.get("topic", a.behaviour) for a, _ in sorted(clusters[c], key=lambda x: -x[1])[:30]]
        # remarks about one agent of a run (Sotopia's raters score each side) make a metric about agents
        focused = sum(a.focus is not None for a, _ in clusters[c]) * 2 > len(clusters[c])
        meta = {**m.metadata, "topics": topics}
        explanation = m.explanation
        only = scenario_specific([runs[a.run_id].task if a.run_id in runs else None for a, _ in clusters[c]],
                                 corpus_tasks)
        if only is not None:  # a metric about one task's particulars, not a behaviour: say so
            meta["scenario_specific"] = only[:300]
            explanation += " Raised about one scenario only, so it may not apply to other tasks."
        by_cluster[c] = replace(m, explanation=explanation, metadata=meta, subject="agent" if focused else "run")
    metrics = as_facets([by_cluster[c] for c in sorted(by_cluster)], facets)
    by_cluster = {m.metadata["cluster"]: m for m in metrics}
    ms = MetricSet(set_id, 0, "induced", tuple(metrics))
    metric_of = [by_cluster[int(lab)].metric_id if lab >= 0 and int(lab) in by_cluster else None for lab in labels]

    ev_train, ev_held, ev_metric_of = aspects, heldout, metric_of
    if sample is not None:  # judged and evaluated on a sample of runs; the metrics come from everything
        ev_train = [aspects[i] for i in sample[0]]
        ev_metric_of = [metric_of[i] for i in sample[0]]
        ev_held = sample[1]
    train_views, held_views = _views(ev_train, runs), _views(ev_held, runs)
    judge = judge_factory()
    stage("fit judge")
    if hasattr(judge, "fit"):
        judge.fit(train_views, ms, labels_of(ev_train, ev_metric_of, ms), evidence=evidence_of(ev_train, ev_metric_of, ms))
    stage("evaluate")
    matcher = matcher_factory()
    if hasattr(matcher, "fit"):
        matcher.fit(ev_train, ev_metric_of, ms)
    evals = []
    for part, views in ((ev_train, train_views), (ev_held, held_views)):
        judgements = judge.judge(views, ms) if views else []
        focus = [v.focus for v in views]
        traits = traits_of(judgements, focus, signed_only=True)
        evals.append(meta_evaluate(part, traits, matcher.match(part, traits, ms),
                                   verdicts=verdicts_about(part, judgements, focus)))
    return Candidate(dict(params), ms, evals[0], evals[1], labels, clusterer,
                     evaluated_on=len(ev_train) if sample is not None else None,
                     matcher_threshold=getattr(matcher, "threshold_", None))


def frontier_rows(candidates: Sequence[Candidate]) -> list[dict]:
    """Each candidate's parameters, size and evaluation on both parts, as a set's provenance keeps them."""
    return [{**c.params, "metrics": len(c.metric_set.metrics), "train": c.train.row(), "heldout": c.heldout.row(),
             **({"evaluated_on": c.evaluated_on} if c.evaluated_on else {})} for c in candidates]


def choose_candidate(candidates: Sequence[Candidate], max_redundancy: float | None = None) -> Candidate:
    """On the induction part's frontier, the best coverage minus redundancy (fewer metrics on ties);
    with `max_redundancy`, the best coverage among candidates no more redundant than that.

    The second is how to compare with a method that works at a known redundancy
    (AutoLibra's own sets sit at 0.85): coverage at matched redundancy.
    """
    on_front = pareto([(c.train.coverage, c.train.redundancy) for c in candidates])
    front = [c for c, ok in zip(candidates, on_front, strict=True) if ok and c.metric_set.metrics] or list(candidates)
    within = [c for c in front if max_redundancy is not None and c.train.redundancy <= max_redundancy]
    if within:
        return max(within, key=lambda c: (round(c.train.coverage, 4), -len(c.metric_set.metrics)))
    return max(front, key=lambda c: (round(c.train.coverage - c.train.redundancy, 4), -len(c.metric_set.metrics)))


def search_sample(train: Sequence[Aspect], held: Sequence[Aspect], config: InduceConfig
                  ) -> tuple[list[int], list[Aspect]] | None:
    """The aspects of a random sample of runs, about `config.search_aspects` of the induction part
    and as many held-out ones in proportion; None when there are no more than that anyway.

    Sampled by run, so each run's remarks stay together (a judge is fitted per run).
    """
    cap = config.search_aspects
    if cap is None or len(train) <= cap:
        return None
    rng = random.Random(config.random_state)
    runs_train = sorted({a.run_id for a in train})
    rng.shuffle(runs_train)
    per_run = Counter(a.run_id for a in train)
    keep, n = set(), 0
    for r in runs_train:
        if n >= cap:
            break
        keep.add(r)
        n += per_run[r]
    idx = [i for i, a in enumerate(train) if a.run_id in keep]
    runs_held = sorted({a.run_id for a in held})
    rng.shuffle(runs_held)
    share = len(keep) / max(1, len(runs_train))
    held_keep = set(runs_held[:max(1, int(round(share * len(runs_held))))])
    return idx, [a for a in held if a.run_id in held_keep]


def search(train: list[Aspect], X: np.ndarray, held: list[Aspect], runs: dict[str, Run],  # noqa: N803
           config: InduceConfig, namer, embedder, judge_factory, matcher_factory, set_id: str,
           progress: Progress | None = None) -> tuple[list[Candidate], Candidate]:
    """Every point of the granularity grid, built and evaluated.

    HDBSCAN runs once per size; its refinements (absorbing, merging) are cheap, and
    points whose refinements end in the same clustering are evaluated once (with the
    same split into facets they are the same metric set). Above `config.search_aspects`
    aspects, candidates are judged on a sample of runs and the grid is searched
    coordinate-wise (sizes and merging, then absorbing and facets at the best of those);
    the chosen set is then evaluated on everything. Progress: "cluster" per size, then
    each stage of the candidates in turn (`CANDIDATE_STAGES`), and "search".
    """
    say = progress or (lambda stage, done, total: None)
    sizes = [s for s in config.min_cluster_sizes if s < len(train)] or [2]
    grid = [{"min_cluster_size": s, "merge_at": t, "absorb_at": a, "split_mixed": f}
            for s in sizes for t in config.merge_thresholds for a in config.absorb_thresholds
            for f in config.split_mixed]
    base: dict[int, tuple[np.ndarray, AspectClusterer]] = {}
    say("cluster", 0, len(sizes))
    for i, size in enumerate(sizes):
        base[size] = base_labels(size, X, config)
        say("cluster", i + 1, len(sizes))
    built: dict[tuple[bytes, bool], Candidate] = {}
    candidates: list[Candidate] = []
    sample = search_sample(train, held, config)
    if sample is not None:
        # Past the sample's size, coordinate-wise: granularity (size, merging) first with the
        # first refinement options, then absorbing and facets around the best of those.
        first = [p for p in grid if p["absorb_at"] == config.absorb_thresholds[0]
                 and p["split_mixed"] == config.split_mixed[0]]
        total = len(first) + len(config.absorb_thresholds) * len(config.split_mixed) - 1
    else:
        first, total = grid, len(grid)

    def run(points: list[dict]) -> None:
        for params in points:
            i = len(candidates)
            labels0, clusterer = base[params["min_cluster_size"]]
            labels = refine(labels0, X, params)
            key = (labels.tobytes(), bool(params["split_mixed"]))
            same = built.get(key)
            if same is None:
                same = built[key] = build_candidate(
                    params, train, X, held, runs, config, namer, embedder, judge_factory, matcher_factory, set_id,
                    labels=labels, clusterer=clusterer, stage=lambda name, n=i: say(name, n, total), sample=sample)
                candidates.append(same)
            else:  # the same clustering reached another way: the same metrics, judged the same
                candidates.append(replace(same, params=dict(params)))
            for name in CANDIDATE_STAGES:
                say(name, i + 1, total)
            say("search", i + 1, total)

    say("search", 0, total)
    run(first)
    if sample is not None:
        best = choose_candidate(candidates, config.max_redundancy).params
        run([p for p in grid if p["min_cluster_size"] == best["min_cluster_size"]
             and p["merge_at"] == best["merge_at"] and p not in first])
    chosen = choose_candidate(candidates, config.max_redundancy)
    if sample is not None:  # the chosen set, judged and evaluated on every aspect
        say("evaluate the chosen on all", 0, 1)
        params = chosen.params
        labels = refine(base[params["min_cluster_size"]][0], X, params)
        full = build_candidate(params, train, X, held, runs, config, namer, embedder, judge_factory,
                               matcher_factory, set_id, labels=labels, clusterer=chosen.clusterer)
        candidates = [full if c is chosen else c for c in candidates]
        chosen = full
        say("evaluate the chosen on all", 1, 1)
    return candidates, chosen


def induce(store=None, *, feedback: Sequence[Feedback] | None = None, runs: dict[str, Run] | None = None,
           grounder, namer, embedder, judge_factory, matcher_factory=None, config: InduceConfig = InduceConfig(),
           set_id: str = "induced", name: str = "Induced metrics", save: bool = True,
           progress: Progress | None = None) -> Induction:
    if feedback is None:
        feedback = load_feedback(store)
    if not feedback:
        raise ValueError("there is no feedback to induce metrics from")
    if runs is None:
        runs = load_runs(store, sorted({f.run_id for f in feedback}))
    matcher_factory = matcher_factory or (lambda: OfflineMatcher(embedder))
    aspects, failed = ground_cached(store, feedback, runs, grounder, progress)
    train_fb, held_fb = split_by_run(feedback, config.holdout, config.random_state)
    train_ids = {f.feedback_id for f in train_fb}
    train = [a for a in aspects if a.feedback_id in train_ids]
    held = [a for a in aspects if a.feedback_id not in train_ids]
    if len(train) < 4:
        raise ValueError(f"only {len(train)} aspects to induce from; more feedback is needed")
    # new vectors (metric examples, key phrases of every candidate) written in batches, not per call
    with getattr(embedder, "deferred_writes", nullcontext)():
        if progress:
            progress("embed", 0, len(train))
        X = embedder.embed([a.metadata.get("topic") or a.behaviour for a in train],  # noqa: N806
                           (lambda d, t: progress("embed", d, t)) if progress else None)
        # One BLAS thread for the search: its many small matrix products and logistic-regression
        # fits alternate with Python, and OpenBLAS's second thread spinning between them took the
        # CPU the next one needed (bench/induce.py, 10k aspects: 117 -> 87 s; the fits 29 -> 8 s).
        with threadpool_limits(limits=1, user_api="blas"):
            candidates, chosen = search(train, X, held, runs, config, namer, embedder, judge_factory,
                                        matcher_factory, set_id, progress)
        result = Induction(chosen.metric_set, chosen, candidates, train, held, X, failed)
        amap = result.aspects_frame().head(MAP_POINTS)
        ms = replace(chosen.metric_set, name=name, provenance={
            "method": "autolibra", "grounding": grounder.backend, "naming": namer.backend,
            "judge": getattr(judge_factory(), "backend", "?"), "params": chosen.params,
            "feedback": sorted(train_ids), "heldout_feedback": sorted(f.feedback_id for f in held_fb),
            "train": chosen.train.row(), "heldout": chosen.heldout.row(),
            "frontier": frontier_rows(candidates),
            # the search judged its candidates on the remarks of a sample of runs (the chosen one on all)
            "search_sample": next((c.evaluated_on for c in candidates if c.evaluated_on), None),
            **({"matcher_threshold": chosen.matcher_threshold} if chosen.matcher_threshold is not None else {}),
            # the aspect map the app draws; kept with the set so it needs no re-embedding
            "aspect_map": amap.round({"x": 4, "y": 4}).assign(aspect=amap["aspect"].str.slice(0, 200))
            .to_dict("records"),
        })
        if save and store is not None:
            from metrics import sets

            ms = sets.save(store, ms, backend=f"{grounder.backend}/{namer.backend}")
        chosen.metric_set = ms
        result.metric_set = ms
        return result
