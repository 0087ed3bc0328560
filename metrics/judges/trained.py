"""An offline judge trained on people's verdicts.

For each metric, a logistic regression predicts +1, -1 or 0 (not raised)
for a run from what is in it: the mean embedding of the (focus actor's)
steps, and how close its closest steps come to the metric's good and bad
examples. Labels come from people: the sign of their feedback on runs they
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

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from metrics.definitions import MetricSet
from metrics.judges.base import Judgement, RunView, Verdict, step_text
from metrics.judges.similarity import SimilarityJudge


def view_key(run_id: str, focus: str | None) -> str:
    return f"{run_id}#{focus}" if focus else run_id


class RaisedThenSign:
    """P(-1), P(0), P(+1) as P(raised) times P(sign | raised), each from its own logistic regression."""

    classes_ = np.array([-1, 0, 1])

    def __init__(self, C: float, random_state: int):  # noqa: N803
        self.C = C
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> RaisedThenSign:  # noqa: N803
        raised = y != 0
        self.raised_ = LogisticRegression(C=self.C, max_iter=3000, class_weight="balanced",
                                          random_state=self.random_state).fit(X, raised) \
            if 0 < raised.sum() < len(y) else float(raised.mean())
        signs = y[raised]
        self.sign_ = LogisticRegression(C=self.C, max_iter=3000, random_state=self.random_state).fit(
            X[raised], signs > 0) if len(set(signs.tolist())) == 2 else float((signs > 0).mean())
        return self

    @staticmethod
    def _p(model, X: np.ndarray) -> np.ndarray:  # noqa: N803
        return np.full(len(X), model) if isinstance(model, float) else model.predict_proba(X)[:, 1]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        raised, pos = self._p(self.raised_, X), self._p(self.sign_, X)
        return np.column_stack([raised * (1 - pos), 1 - raised, raised * pos])


class TrainedJudge:
    backend = "offline-trained"
    version = "1"

    def __init__(self, embedder, C: float = 0.5, min_labels: int = 4, abstain_at: float = 0.7,  # noqa: N803
                 random_state: int = 0):
        self.embedder = embedder
        self.C = C
        self.abstain_at = abstain_at  # say "not applicable" only when at least this sure
        self.min_labels = min_labels
        self.random_state = random_state

    # -- features -------------------------------------------------------------------

    def _view_vectors(self, views: Sequence[RunView]) -> tuple[list[np.ndarray], list[list[int]]]:
        texts, spans, idxs = [], [], []
        for v in views:
            idx = [j for j, s in enumerate(v.steps) if v.focus is None or s.actor == v.focus] or \
                list(range(len(v.steps)))
            spans.append((len(texts), len(texts) + len(idx)))
            texts.extend(step_text(v.steps[j]) for j in idx)
            idxs.append(idx)
        E = self.embedder.embed(texts) if texts else np.zeros((0, 1), np.float32)  # noqa: N806
        return [E[a:b] for a, b in spans], idxs

    def _anchor_vectors(self, metric_set: MetricSet) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for m in metric_set.metrics:
            g = self.embedder.embed([e.text for e in m.good]) if m.good else np.zeros((0, 1))
            b = self.embedder.embed([e.text for e in m.bad]) if m.bad else np.zeros((0, 1))
            out.append((g, b))
        return out

    @staticmethod
    def _features(S: np.ndarray, anchors: tuple[np.ndarray, np.ndarray]) -> np.ndarray:  # noqa: N803
        mean = S.mean(axis=0) if len(S) else np.zeros(S.shape[1] if S.ndim == 2 else 1)
        g, b = anchors
        sg = float((S @ g.T).max()) if len(S) and g.size and g.shape[1] == S.shape[1] else 0.0
        sb = float((S @ b.T).max()) if len(S) and b.size and b.shape[1] == S.shape[1] else 0.0
        return np.concatenate([mean, [sg, sb, sg - sb]])

    def margins(self, runs: Sequence[RunView], metric_set: MetricSet) -> np.ndarray:
        """P(+1) - P(-1) per run and metric: a graded score, for rank correlations with people."""
        vecs, _ = self._view_vectors(runs)
        anchors = self._anchor_vectors(metric_set)
        out = np.zeros((len(runs), len(metric_set.metrics)))
        for j, (m, anc) in enumerate(zip(metric_set.metrics, anchors, strict=True)):
            model = getattr(self, "models_", {}).get(m.metric_id)
            for i, S in enumerate(vecs):
                if isinstance(model, int):
                    out[i, j] = model
                elif model is not None:
                    proba = model.predict_proba(self._features(S, anc)[None, :])[0]
                    cl = [int(c) for c in model.classes_]
                    out[i, j] = (proba[cl.index(1)] if 1 in cl else 0) - (proba[cl.index(-1)] if -1 in cl else 0)
        return out

    # -- fit and judge ----------------------------------------------------------------

    def fit(self, views: Sequence[RunView], metric_set: MetricSet, labels: dict[tuple[str, str], int],
            focus_of: Callable[[RunView], str | None] = lambda v: v.focus) -> TrainedJudge:
        """labels: (view key, metric id) -> +1/-1 from people; missing pairs count as 0."""
        vecs, _ = self._view_vectors(views)
        anchors = self._anchor_vectors(metric_set)
        self.models_: dict[str, RaisedThenSign | int] = {}
        self.label_counts_: dict[str, dict[int, int]] = {}
        for m, anc in zip(metric_set.metrics, anchors, strict=True):
            X = np.vstack([self._features(S, anc) for S in vecs])  # noqa: N806
            y = np.array([labels.get((view_key(v.run_id, focus_of(v)), m.metric_id), 0) for v in views])
            counts = {c: int((y == c).sum()) for c in (-1, 0, 1)}
            self.label_counts_[m.metric_id] = counts
            if counts[-1] + counts[1] < self.min_labels:
                continue  # too little to learn from: the similarity judge answers for this metric
            classes = [c for c in (-1, 0, 1) if counts[c]]
            if len(classes) == 1:
                self.models_[m.metric_id] = classes[0]
                continue
            self.models_[m.metric_id] = RaisedThenSign(self.C, self.random_state).fit(X, y)
        self.metric_set_ = metric_set
        return self

    def judge(self, runs: Sequence[RunView], metric_set: MetricSet,
              progress: Callable[[int, int], None] | None = None) -> list[Judgement]:
        vecs, idxs = self._view_vectors(runs)
        anchors = self._anchor_vectors(metric_set)
        fallback = SimilarityJudge(self.embedder).judge(runs, metric_set)
        out = []
        for n, (view, S, idx, fb) in enumerate(zip(runs, vecs, idxs, fallback, strict=True)):
            verdicts = []
            for m, anc, fv in zip(metric_set.metrics, anchors, fb.verdicts, strict=True):
                model = getattr(self, "models_", {}).get(m.metric_id)
                if model is None:
                    verdicts.append(fv)
                    continue
                if isinstance(model, int):
                    value, p = model, 1.0
                else:
                    proba = model.predict_proba(self._features(S, anc)[None, :])[0]
                    classes = [int(c) for c in model.classes_]
                    p_na = float(proba[classes.index(0)]) if 0 in classes else 0.0
                    signed = [(float(q), c) for q, c in zip(proba, classes, strict=True) if c != 0]
                    if p_na >= self.abstain_at or not signed:
                        value, p = 0, p_na
                    else:
                        p, value = max(signed)
                evidence: tuple[int, ...] = ()
                g, b = anc
                ref = g if value > 0 else b
                if value != 0 and ref.size and len(S) and ref.shape[1] == S.shape[1]:
                    evidence = (idx[int((S @ ref.T).max(axis=1).argmax())],)
                counts = self.label_counts_.get(m.metric_id, {})
                verdicts.append(Verdict(
                    m.metric_id, value, evidence,
                    f"classifier trained on {counts.get(1, 0)} praised and {counts.get(-1, 0)} criticised runs "
                    f"(p={p:.2f})" + (f"; closest evidence step {evidence[0]}" if evidence else ""),
                    confidence=round(p, 3)))
            out.append(Judgement(view.run_id, tuple(verdicts)))
            if progress:
                progress(n + 1, len(runs))
        return out
