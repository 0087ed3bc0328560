"""An offline judge that learns from the scores people gave, and says which metrics it cannot read.

Where people scored runs (Sotopia's raters score each agent on seven
dimensions; an annotator rates a run 1-5), a metric whose praised and
criticised remarks go with one of those scores is learnt as a regression on
that score: what the agent itself said and did, and what the others said to
it, as word 1-2-gram TF-IDF, into a ridge regression whose strength is chosen
inside the training data. The verdict is +1 above the score where people
start to praise, -1 below it.

Before a metric is scored, its model is cross-validated on the training runs,
grouped by scenario (a run's task), so a metric is never judged on how well
it remembers a scenario. A metric whose cross-validated agreement with people
(Spearman) is below `min_agreement` is left unscored and listed in
`needs_llm_`: the offline judge cannot read it, and saying so beats a verdict
that is noise. Metrics with no score to learn from go to the fallback judge
(the one trained on signs), unless it gives nearly every run it was fitted on
the same verdict: that metric is listed in `needs_llm_` too.

TF-IDF and ridge rather than the sentence embedder: on Sotopia dev they rank
agents closer to people (goal 0.41 against 0.36 for mean step embeddings,
`bench/quality_sotopia.py`), and they are cheap to refit per metric.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from scipy.sparse import hstack
from scipy.stats import spearmanr
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import RidgeCV

from metrics.definitions import MetricSet
from metrics.judges.base import Judge, Judgement, RunView, Verdict, step_text
from metrics.judges.trained import view_key

ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0)


def sides(view: RunView) -> tuple[str, str]:
    """(what the judged actor said and did, what the others said): the run whole when it has no focus."""
    own, other = [], []
    for s in view.steps:
        if not s.actor and s.kind == "system":
            continue
        mine = view.focus is None or s.actor == view.focus
        (own if mine else other).append(step_text(s))
    return " ".join(own), " ".join(other)


class _Graded:
    """One metric's regression: two TF-IDF vocabularies (own turns, others' turns) and a ridge."""

    def fit(self, own: list[str], other: list[str], y: np.ndarray) -> _Graded:
        self.vec_ = TfidfVectorizer(ngram_range=(1, 2), min_df=3, sublinear_tf=True).fit(own + other)
        self.ridge_ = RidgeCV(alphas=ALPHAS).fit(self._x(own, other), y)
        return self

    def _x(self, own: list[str], other: list[str]):
        return hstack([self.vec_.transform(own), self.vec_.transform(other)]).tocsr()

    def predict(self, own: list[str], other: list[str]) -> np.ndarray:
        return self.ridge_.predict(self._x(own, other))


def grouped_folds(groups: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """A fold number per item, whole groups to a fold, groups shuffled by `seed`."""
    names = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[j]: i % folds for i, j in enumerate(order)}
    return np.array([fold_of[g] for g in groups])


def cross_validated(own: list[str], other: list[str], y: np.ndarray, groups: Sequence[str], folds: int = 5,
                    seed: int = 0) -> np.ndarray:
    """Out-of-fold predictions, each from a model fitted without the item's scenario."""
    fold = grouped_folds(groups, min(folds, len(set(groups))), seed)
    pred = np.zeros(len(y))
    for f in sorted(set(fold.tolist())):
        tr, te = np.where(fold != f)[0], np.where(fold == f)[0]
        m = _Graded().fit([own[i] for i in tr], [other[i] for i in tr], y[tr])
        pred[te] = m.predict([own[i] for i in te], [other[i] for i in te])
    return pred


class GradedJudge:
    # it answers for the trained judge (its fallback), on the same verdicts table key
    backend = "offline-trained"
    version = "2"

    def __init__(self, fallback: Judge | None = None, min_views: int = 30, min_agreement: float = 0.15,
                 folds: int = 5, seed: int = 0, max_constant: float = 0.97):
        self.fallback = fallback
        self.max_constant = max_constant  # a fallback verdict this common over the fitted runs is no reading
        self.min_views = min_views
        self.min_agreement = min_agreement
        self.folds = folds
        self.seed = seed

    def fit(self, views: Sequence[RunView], metric_set: MetricSet, targets: dict[tuple[str, str], float],
            score_keys: dict[str, str], praised_share: dict[str, float] | None = None) -> GradedJudge:
        """targets: (view key, metric id) -> people's score; score_keys: metric id -> the score it learns."""
        by_key = {view_key(v.run_id, v.focus): v for v in views}
        self.models_: dict[str, _Graded] = {}
        self.cut_: dict[str, float] = {}
        self.agreement_: dict[str, float] = {}
        self.needs_llm_: dict[str, str] = {}
        self.score_keys_ = dict(score_keys)
        self.trained_on_: dict[str, int] = {}
        for m in metric_set.metrics:
            if m.metric_id not in score_keys:
                continue
            keys = [k for k in by_key if (k, m.metric_id) in targets]
            if len(keys) < self.min_views:
                self.needs_llm_[m.metric_id] = f"only {len(keys)} runs scored by people (needs {self.min_views})"
                continue
            own, other = map(list, zip(*(sides(by_key[k]) for k in keys), strict=True))
            y = np.array([targets[(k, m.metric_id)] for k in keys], float)
            groups = [by_key[k].task or by_key[k].run_id for k in keys]
            oof = cross_validated(own, other, y, groups, self.folds, self.seed)
            rho = float(spearmanr(oof, y).statistic) if np.std(oof) > 0 and np.std(y) > 0 else 0.0
            self.agreement_[m.metric_id] = rho
            if not rho >= self.min_agreement:
                self.needs_llm_[m.metric_id] = (f"cross-validated Spearman with people {rho:+.2f} on {len(keys)} "
                                                f"runs, below {self.min_agreement:.2f}")
                continue
            self.models_[m.metric_id] = _Graded().fit(own, other, y)
            # +1 for the share of runs people praise on this metric, judged on held-out predictions
            share = (praised_share or {}).get(m.metric_id, 0.5)
            self.cut_[m.metric_id] = float(np.quantile(oof, min(max(1 - share, 0.05), 0.95)))
            self.trained_on_[m.metric_id] = len(keys)
        self._refuse_constant_fallback(views, metric_set)
        return self

    def _refuse_constant_fallback(self, views: Sequence[RunView], metric_set: MetricSet) -> None:
        """A metric the fallback gives one verdict on nearly every run it was fitted on is not read either.

        A verdict that does not change with the run says nothing about the run
        (the "judge that reads nothing"), so such a metric is listed as needing an
        LLM judge rather than scored.
        """
        rest = metric_set.with_metrics(m for m in metric_set.metrics
                                       if m.metric_id not in self.models_ and m.metric_id not in self.needs_llm_)
        if self.fallback is None or not rest.metrics or len(views) < self.min_views:
            return
        seen: dict[str, list[int]] = {}
        for j in self.fallback.judge(list(views), rest):
            for v in j.verdicts:
                seen.setdefault(v.metric_id, []).append(v.value)
        for m in rest.metrics:
            values = seen.get(m.metric_id, [])
            if not values:
                continue
            common, n = Counter(values).most_common(1)[0]
            if n >= self.max_constant * len(values):
                self.needs_llm_[m.metric_id] = (
                    f"the offline judge gives {common:+d} to {n} of the {len(values)} runs it learnt from: "
                    "it does not read this metric from the run")

    def margins(self, runs: Sequence[RunView], metric_set: MetricSet) -> np.ndarray:
        """Predicted score minus the praise cut, per run and metric (0 where a metric is not graded)."""
        out = np.zeros((len(runs), len(metric_set.metrics)))
        own, other = map(list, zip(*(sides(v) for v in runs), strict=True)) if runs else ([], [])
        for j, m in enumerate(metric_set.metrics):
            model = self.models_.get(m.metric_id)
            if model is not None and runs:
                out[:, j] = model.predict(own, other) - self.cut_[m.metric_id]
        return out

    def judge(self, runs: Sequence[RunView], metric_set: MetricSet,
              progress: Callable[[int, int], None] | None = None) -> list[Judgement]:
        graded = metric_set.with_metrics(m for m in metric_set.metrics if m.metric_id in self.models_)
        rest = metric_set.with_metrics(m for m in metric_set.metrics
                                       if m.metric_id not in self.models_ and m.metric_id not in self.needs_llm_)
        margin = self.margins(runs, graded)
        fallback = self.fallback.judge(runs, rest) if self.fallback is not None and rest.metrics else \
            [Judgement(v.run_id) for v in runs]
        out = []
        for i, (v, fb) in enumerate(zip(runs, fallback, strict=True)):
            if fb.error is not None:
                out.append(fb)
                continue
            verdicts = list(fb.verdicts)
            for j, m in enumerate(graded.metrics):
                d = float(margin[i, j])
                rho, key = self.agreement_[m.metric_id], self.score_keys_[m.metric_id]
                verdicts.append(Verdict(
                    m.metric_id, 1 if d >= 0 else -1, (),
                    f"predicted people's {key} score {d + self.cut_[m.metric_id]:.2f} (praised from "
                    f"{self.cut_[m.metric_id]:.2f}); model trained on {self.trained_on_[m.metric_id]} runs "
                    f"people scored, cross-validated Spearman {rho:+.2f}", confidence=round(min(1.0, abs(d)), 3)))
            order = {m.metric_id: n for n, m in enumerate(metric_set.metrics)}
            out.append(Judgement(v.run_id, tuple(sorted(verdicts, key=lambda x: order.get(x.metric_id, 0)))))
            if progress:
                progress(i + 1, len(runs))
        return out
