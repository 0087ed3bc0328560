"""An offline judge trained on people's verdicts.

For each metric, a logistic regression predicts +1, -1 or 0 (not raised)
for a run from what is in it: the mean embedding of the (focus actor's)
steps (its main directions over the fitted runs, `Projection`), how close
its closest steps come to the metric's good and bad examples, and its
steps' lean towards the steps people pointed at when they
praised rather than criticised the metric on other runs (its evidence;
`StepVectors.near_evidence`). The examples are remarks ("wordy at the end"), which
resemble no step much; the evidence is steps, so a run's own long-winded final
message finds the ones people criticised. Without it, a behaviour that lives in one step among many (the
closing message) was read by no feature, and the judge gave every run its
most common sign. Labels come from people: the sign of their feedback on runs they
commented on, 0 where they raised nothing the metric is about. A metric
with too few labels falls back to the similarity judge.

Two questions, two classifiers: is the metric raised on this run at all
(classes weighted equally, so a metric people raise on few runs is still
raised), and if so which way. The sign is not reweighted: the judge should
give the sign a person most likely would, and where the run tells it little
that is the sign people usually give (one balanced three-way model pushed
verdicts towards rare signs). Like every offline
judge here, it reads the trace as data only; text planted in a trace is
just more text to embed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from metrics.definitions import MetricSet
from metrics.judges.base import Judgement, RunView, Verdict, step_text
from metrics.judges.similarity import SimilarityJudge
from metrics.judges.step_features import (
    BEHAVIOUR_FEATURES, NO_EVIDENCE, TOKENS, Anchors, Evidence, StepVectors, evidence_steps,
)


def view_key(run_id: str, focus: str | None) -> str:
    return f"{run_id}#{focus}" if focus else run_id


class RaisedThenSign:
    """P(-1), P(0), P(+1) as P(raised) times P(sign | raised), each from its own logistic regression.

    Features are standardised first, so the penalty weighs each alike: unscaled, the
    closeness features (a spread of a few tenths) needed coefficients the penalty would
    not allow, and the sign model gave every run the common sign. The first `overall`
    columns (the run's mean embedding) are then shrunk so that together they weigh as one
    feature: standardised one by one, dozens of directions that say what kind of run it
    is outvoted the few that read the behaviour, and fitted noise on small label sets.
    """

    classes_ = np.array([-1, 0, 1])

    def __init__(self, C: float, random_state: int, overall: int = 0):  # noqa: N803
        self.C = C
        self.random_state = random_state
        self.overall = overall

    def _z(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        Z = self.scaler_.transform(X)  # noqa: N806
        Z[:, :self.overall] /= np.sqrt(max(1, self.overall))
        return Z

    def fit(self, X: np.ndarray, y: np.ndarray) -> RaisedThenSign:  # noqa: N803
        self.scaler_ = StandardScaler().fit(X)
        Z = self._z(X)  # noqa: N806
        raised = y != 0
        self.raised_ = LogisticRegression(C=self.C, max_iter=3000, class_weight="balanced",
                                          random_state=self.random_state).fit(Z, raised) \
            if 0 < raised.sum() < len(y) else float(raised.mean())
        signs = y[raised]
        self.sign_ = LogisticRegression(C=self.C, max_iter=3000, random_state=self.random_state).fit(
            Z[raised], signs > 0) if len(set(signs.tolist())) == 2 else float((signs > 0).mean())
        return self

    @staticmethod
    def _p(model, X: np.ndarray) -> np.ndarray:  # noqa: N803
        return np.full(len(X), model) if isinstance(model, float) else model.predict_proba(X)[:, 1]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        Z = self._z(X)  # noqa: N806
        raised, pos = self._p(self.raised_, Z), self._p(self.sign_, Z)
        return np.column_stack([raised * (1 - pos), 1 - raised, raised * pos])


class Projection:
    """A run's mean step vector, reduced to its `k` main directions over the runs the judge was fitted on.

    The classifiers would otherwise get one feature per embedding dimension (384,
    or thousands for a hashing embedder): standardised, those drown the few features
    that read the behaviour (closeness to the metric's evidence), and fitting cost
    grows with them (half of a large induction's time went to those fits).
    """

    def __init__(self, k: int = 32, random_state: int = 0):
        self.k = k
        self.random_state = random_state
        self.token = next(TOKENS)  # names this projection in a memo's keys

    def fit(self, means: np.ndarray) -> Projection:
        k = min(self.k, len(means) - 1, means.shape[1] if means.ndim == 2 else 0)
        self.pca_ = PCA(k, svd_solver="randomized", random_state=self.random_state).fit(means) if k >= 2 else None
        return self

    def transform(self, means: np.ndarray) -> np.ndarray:
        pca = getattr(self, "pca_", None)
        if pca is None:
            return np.zeros((len(means), 0))  # too few runs to find directions in: no such features
        if means.ndim != 2 or means.shape[1] != pca.n_features_in_:
            return np.zeros((len(means), pca.n_components_))  # runs without a step to embed: no direction
        return pca.transform(means)


class TrainedJudge:
    backend = "offline-trained"
    version = "1"

    def __init__(self, embedder, C: float = 0.5, min_labels: int = 4, abstain_at: float = 0.7,  # noqa: N803
                 random_state: int = 0, memo: JudgeMemo | None = None):
        self.embedder = embedder
        # shared by the judges of one induction, whose candidates judge the same runs
        self.memo = memo or JudgeMemo()
        self.C = C
        self.abstain_at = abstain_at  # say "not applicable" only when at least this sure
        self.min_labels = min_labels
        self.random_state = random_state

    # -- features -------------------------------------------------------------------

    def _view_vectors(self, views: Sequence[RunView]) -> tuple[StepVectors, list[list[int]]]:
        return self.memo.steps(views, lambda: self._embed_views(views))

    def _embed_views(self, views: Sequence[RunView]) -> tuple[StepVectors, list[list[int]]]:
        texts, lengths, idxs = [], [], []
        for v in views:
            idx = [j for j, s in enumerate(v.steps) if v.focus is None or s.actor == v.focus] or \
                list(range(len(v.steps)))
            lengths.append(len(idx))
            texts.extend(step_text(v.steps[j]) for j in idx)
            idxs.append(idx)
        # Each distinct text once: runs repeat their prompts, tool calls and results, and the
        # features compare every step with examples and evidence (a third of the demo's steps
        # are distinct; real traces repeat less, and pay nothing for it).
        number: dict[str, int] = {}
        inverse = np.fromiter((number.setdefault(t, len(number)) for t in texts), dtype=np.int64, count=len(texts))
        U = self.embedder.embed(list(number)) if texts else np.zeros((0, 1), np.float32)  # noqa: N806
        return StepVectors(U[inverse], np.asarray(lengths, dtype=np.int64), [v.run_id for v in views],
                      distinct=(U, inverse)), idxs

    def _anchor_vectors(self, metric_set: MetricSet) -> list[Anchors]:
        # One embedding call for every metric's examples: two per metric (hundreds per
        # candidate at 10k aspects) each took the store's cache lookup on its own.
        texts = [(tuple(e.text for e in m.good), tuple(e.text for e in m.bad)) for m in metric_set.metrics]
        flat = [t for good, bad in texts for t in good + bad]
        vectors = self.embedder.embed(flat) if flat else np.zeros((0, 1))
        out, at = [], 0
        for good, bad in texts:
            g = vectors[at:at + len(good)] if good else np.zeros((0, 1))
            at += len(good)
            b = vectors[at:at + len(bad)] if bad else np.zeros((0, 1))
            at += len(bad)
            out.append(Anchors(g, b, (good, bad)))
        return out

    def margins(self, runs: Sequence[RunView], metric_set: MetricSet) -> np.ndarray:
        """P(+1) - P(-1) per run and metric: a graded score, for rank correlations with people."""
        steps, _ = self._view_vectors(runs)
        anchors = self._anchor_vectors(metric_set)
        out = np.zeros((len(runs), len(metric_set.metrics)))
        for j, (m, anc) in enumerate(zip(metric_set.metrics, anchors, strict=True)):
            model = getattr(self, "models_", {}).get(m.metric_id)
            if isinstance(model, int):
                out[:, j] = model
            elif model is not None and len(runs):
                X = self.memo.features(steps, anc, self._evidence_of(m.metric_id), self.projection_)[0]  # noqa: N806
                proba = model.predict_proba(X)
                cl = [int(c) for c in model.classes_]
                out[:, j] = (proba[:, cl.index(1)] if 1 in cl else 0) - (proba[:, cl.index(-1)] if -1 in cl else 0)
        out[steps.lengths == 0] = 0  # as in judge(): a run with nothing to read ranks in the middle
        return out

    def _evidence_of(self, metric_id: str) -> Evidence | None:
        return getattr(self, "evidence_", {}).get(metric_id)  # None before fit, as for models_

    # -- fit and judge ----------------------------------------------------------------

    def fit(self, views: Sequence[RunView], metric_set: MetricSet, labels: dict[tuple[str, str], int],
            focus_of: Callable[[RunView], str | None] = lambda v: v.focus,
            evidence: dict[tuple[str, str], tuple[int, ...]] | None = None) -> TrainedJudge:
        """labels: (view key, metric id) -> +1/-1 from people; missing pairs count as 0.
        evidence: (view key, metric id) -> the steps people pointed at for that label."""
        steps, idxs = self._view_vectors(views)
        anchors = self._anchor_vectors(metric_set)
        # the same runs give the same directions: every candidate of an induction shares one
        self.projection_ = self.memo.projection(steps, lambda: Projection(random_state=self.random_state).fit(
            steps.means))
        self.models_: dict[str, RaisedThenSign | int] = {}
        self.label_counts_: dict[str, dict[int, int]] = {}
        self.evidence_: dict[str, Evidence] = {}
        # each metric's labels as a column over the views, filled from the (few) labelled pairs
        row_of: dict[str, list[int]] = {}
        for i, v in enumerate(views):
            row_of.setdefault(view_key(v.run_id, focus_of(v)), []).append(i)
        ys = {m.metric_id: np.zeros(len(views), dtype=np.int64) for m in metric_set.metrics}
        for (key, mid), value in labels.items():
            if mid in ys and key in row_of and value:
                ys[mid][row_of[key]] = value
        keys = [view_key(v.run_id, focus_of(v)) for v in views]
        for m, anc in zip(metric_set.metrics, anchors, strict=True):
            y = ys[m.metric_id]
            ev = self.evidence_[m.metric_id] = evidence_steps(steps, idxs, views, keys, y, m.metric_id, evidence or {},
                                                          self.random_state)
            X = self.memo.features(steps, anc, ev, self.projection_)[0]  # noqa: N806
            counts = {c: int((y == c).sum()) for c in (-1, 0, 1)}
            self.label_counts_[m.metric_id] = counts
            if counts[-1] + counts[1] < self.min_labels:
                continue  # too little to learn from: the similarity judge answers for this metric
            classes = [c for c in (-1, 0, 1) if counts[c]]
            if len(classes) == 1:
                self.models_[m.metric_id] = classes[0]
                continue
            self.models_[m.metric_id] = self.memo.model(
                (steps.token, self.projection_.token, anc.texts, ev.key, y.tobytes(), self.C, self.random_state),
                lambda X=X, y=y: RaisedThenSign(self.C, self.random_state, X.shape[1] - BEHAVIOUR_FEATURES).fit(X, y))
        self.metric_set_ = metric_set
        return self

    def judge(self, runs: Sequence[RunView], metric_set: MetricSet,
              progress: Callable[[int, int], None] | None = None) -> list[Judgement]:
        steps, idxs = self._view_vectors(runs)
        anchors = self._anchor_vectors(metric_set)
        models = getattr(self, "models_", {})
        untrained = replace(metric_set, metrics=tuple(m for m in metric_set.metrics if models.get(m.metric_id) is None))
        fallback = SimilarityJudge(self.embedder).judge(runs, untrained) if untrained.metrics else []
        by_fallback = {m.metric_id: k for k, m in enumerate(untrained.metrics)}
        # Every run's verdict on a metric from one batched prediction (one row per run): a call
        # per run and metric spent nearly all its time in scikit-learn's input checks.
        columns: list[list[Verdict]] = []
        for m, anc in zip(metric_set.metrics, anchors, strict=True):
            model = models.get(m.metric_id)
            if model is None:
                k = by_fallback[m.metric_id]
                columns.append([fb.verdicts[k] for fb in fallback])
                continue
            counts = self.label_counts_.get(m.metric_id, {})
            trained_on = (f"classifier trained on {counts.get(1, 0)} praised and {counts.get(-1, 0)} "
                          f"criticised runs")
            X, at_good, at_bad = self.memo.features(steps, anc, self._evidence_of(m.metric_id),  # noqa: N806
                                                     self.projection_)
            values, ps = self._decide(model, X)
            empty = Verdict(m.metric_id, 0, (), "the run has no steps to judge", confidence=1.0)
            # Verdicts are immutable, so runs with the same verdict share one: most runs get
            # "not applicable" at one of a thousand confidences, and an induction makes
            # millions of verdicts (their construction was a tenth of it at 10k aspects).
            shared: dict[tuple[int, tuple[int, ...], float], Verdict] = {}
            column = []
            for i, (value, conf) in enumerate(zip(values, np.round(ps, 3).tolist(), strict=True)):
                if not steps.lengths[i]:  # nothing to read: a classifier's answer here would be its bias
                    column.append(empty)
                    continue
                at = at_good if value > 0 else at_bad
                evidence: tuple[int, ...] = (idxs[i][int(at[i])],) if value != 0 and at[i] >= 0 else ()
                v = shared.get((value, evidence, conf))
                if v is None:
                    v = shared[value, evidence, conf] = Verdict(
                        m.metric_id, value, evidence,
                        f"{trained_on} (p={conf:.2f})" + (f"; closest evidence step {evidence[0]}" if evidence else ""),
                        confidence=conf)
                column.append(v)
            columns.append(column)
        out = []
        for n, view in enumerate(runs):
            out.append(Judgement(view.run_id, tuple(col[n] for col in columns)))
            if progress:
                progress(n + 1, len(runs))
        return out

    def _decide(self, model: RaisedThenSign | int, X: np.ndarray) -> tuple[list[int], list[float]]:  # noqa: N803
        """Each row's verdict and how sure of it the model is: 0 only when sure enough it is not raised;
        otherwise the likelier sign (+1 on a tie)."""
        if isinstance(model, int):
            return [model] * len(X), [1.0] * len(X)
        if not len(X):
            return [], []
        proba = model.predict_proba(X)
        classes = [int(c) for c in model.classes_]
        p_na = proba[:, classes.index(0)] if 0 in classes else np.zeros(len(X))
        p_neg = proba[:, classes.index(-1)] if -1 in classes else np.full(len(X), -np.inf)
        p_pos = proba[:, classes.index(1)] if 1 in classes else np.full(len(X), -np.inf)
        signed = np.isfinite(p_neg) | np.isfinite(p_pos)
        sign = np.where(p_pos >= p_neg, 1, -1)
        abstain = (p_na >= self.abstain_at) | ~signed
        values = np.where(abstain, 0, sign)
        ps = np.where(abstain, p_na, np.maximum(p_pos, p_neg))
        return values.tolist(), ps.astype(float).tolist()


class JudgeMemo:
    """What the trained judges of one induction share, computed once.

    The induction's candidates all judge the same runs, and most of their metrics
    recur from candidate to candidate (a merge or a facet split changes a few
    clusters, not all): the runs' step vectors, each metric's features and each
    classifier fitted on the same features and labels are the same every time.
    Bounded: the step vectors of the last `max_views` lists of runs, and at most
    `max_entries` features and models.
    """

    def __init__(self, max_views: int = 2, max_entries: int = 20000):
        self.max_views = max_views
        self.max_entries = max_entries
        self._steps: OrderedDict[tuple, tuple[Sequence[RunView], tuple[StepVectors, list[list[int]]]]] = OrderedDict()
        self._features: OrderedDict[tuple, tuple[np.ndarray, ...]] = OrderedDict()
        self._models: OrderedDict[tuple, RaisedThenSign] = OrderedDict()
        self._projections: OrderedDict[int, Projection] = OrderedDict()
        self._means: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def __getstate__(self) -> dict:
        # a judge sent to a worker takes no runs' vectors along; the worker fills its own memo
        return {"max_views": self.max_views, "max_entries": self.max_entries}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def steps(self, views: Sequence[RunView],
              compute: Callable[[], tuple[StepVectors, list[list[int]]]]) -> tuple[StepVectors, list[list[int]]]:
        # the views' step tuples are kept alive with the entry, so their ids cannot be reused
        key = tuple((v.run_id, v.focus, id(v.steps)) for v in views)
        hit = self._steps.get(key)
        if hit is None:
            hit = self._steps[key] = (list(views), compute())
            while len(self._steps) > self.max_views:
                self._steps.popitem(last=False)
        self._steps.move_to_end(key)
        return hit[1]

    def _cached(self, table: OrderedDict, key, compute: Callable, cap: int | None = None):
        hit = table.get(key)
        if hit is None:
            hit = table[key] = compute()
            while len(table) > (cap or self.max_entries):
                table.popitem(last=False)
        return hit

    def projection(self, steps: StepVectors, fit: Callable[[], Projection]) -> Projection:
        return self._cached(self._projections, steps.token, fit, self.max_views)

    def features(self, steps: StepVectors, anchors: Anchors, evidence: Evidence | None,
                 projection: Projection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        evidence = evidence or NO_EVIDENCE
        means = self._cached(self._means, (steps.token, projection.token),
                             lambda: projection.transform(steps.means), 2 * self.max_views)
        # Cached apart: candidates that name a cluster differently share its evidence, and the reverse
        sg, sb, at_good, at_bad = self._cached(self._features, ("close", steps.token, anchors.texts),
                                               lambda: steps.closest(anchors))
        lean_top, lean_bottom = self._cached(self._features, ("lean", steps.token, evidence.key),
                                             lambda: steps.near_evidence(evidence))
        # the last BEHAVIOUR_FEATURES columns read the behaviour; the rest say what kind of run it is
        return np.column_stack([means, sg, sb, sg - sb, lean_top, lean_bottom]), at_good, at_bad

    def model(self, key: tuple, fit: Callable[[], RaisedThenSign]) -> RaisedThenSign:
        return self._cached(self._models, key, fit)
