"""ProactiveBench's measures, for reward models and for the agents they score.

A reward model predicts `valid` for a proposal (or a silence). Its measures
are accuracy, precision, recall and F1 with valid as the positive class, and
agreement within each of the four categories: on a balanced test set a model
that accepts everything already reaches F1 0.67, so per-category agreement
is what shows whether it tells good proposals from bad ones.

An agent is scored as ProactiveBench counts it: a proposal the reward model
accepts is a true positive, one it rejects a false positive; a silence the
model agrees with is a true negative, a silence where it wanted help a false
negative. ProactiveBench's "false alarm" is 1 - precision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.model_selection import GroupKFold

from pipa.proactive.data import CATEGORIES, Proposal


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def prf(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = 2 * p * r / (p + r) if p == p and r == r and p + r else 0.0
    return {"accuracy": _ratio(tp + tn, tp + fp + fn + tn), "precision": p, "recall": r, "f1": f1}


def reward_model_metrics(proposals: Sequence[Proposal], predicted: Sequence[bool]) -> dict:
    """How well predicted validity agrees with people's labels, overall and per category."""
    y = np.array([bool(p.valid) for p in proposals])
    yhat = np.array([bool(v) for v in predicted])
    tp, fp = int((y & yhat).sum()), int((~y & yhat).sum())
    fn, tn = int((y & ~yhat).sum()), int((~y & ~yhat).sum())
    out = {"n": len(y), **prf(tp, fp, fn, tn), "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
           "categories": {}}
    cats = np.array([p.category for p in proposals])
    for c in CATEGORIES:
        m = cats == c
        out["categories"][c] = {"n": int(m.sum()), "agreement": _ratio((y[m] == yhat[m]).sum(), m.sum())}
    return out


def agent_metrics(proposals: Sequence[Proposal], reward_valid: Sequence[bool]) -> dict:
    """An agent's proactivity as judged by a reward model (`reward_valid`: the model's verdict per decision)."""
    tp = fp = tn = fn = 0
    for p, ok in zip(proposals, reward_valid, strict=True):
        if p.silent:
            tn, fn = (tn + 1, fn) if ok else (tn, fn + 1)
        else:
            tp, fp = (tp + 1, fp) if ok else (tp, fp + 1)
    m = prf(tp, fp, fn, tn)
    return {**m, "false_alarm": 1 - m["precision"] if m["precision"] == m["precision"] else float("nan"),
            "proposals": tp + fp, "silences": tn + fn, "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def annotator_agreement(proposals: Sequence[Proposal]) -> dict | None:
    """How well one person predicts the others: each annotator's verdict against the
    majority of the rest, wherever the rest are not split evenly.

    The reference a reward model should be read against: a model cannot agree with
    people more than they agree with each other. None without three or more
    verdicts per proposal.
    """
    tp = fp = fn = tn = 0
    for p in proposals:
        j = p.judgements
        if len(j) < 3:
            continue
        for i, mine in enumerate(j):
            rest = j[:i] + j[i + 1:]
            if sum(rest) * 2 == len(rest):
                continue
            theirs = sum(rest) * 2 > len(rest)
            tp, fp = tp + (mine and theirs), fp + (mine and not theirs)
            fn, tn = fn + (not mine and theirs), tn + (not mine and not theirs)
    if not tp + fp + fn + tn:
        return None
    return {"n": tp + fp + fn + tn, **prf(tp, fp, fn, tn)}


def cross_validate(make_model: Callable[[], object], proposals: Sequence[Proposal], n_splits: int = 4,
                   progress: Callable[[int, int], None] | None = None) -> dict:
    """Grouped k-fold: proposals from one event stream never sit on both sides of a split.

    The same stream appears at many lengths in the reward data, so an
    ungrouped split would score the model on events it trained on.
    """
    groups = [p.stream or p.source or str(i) for i, p in enumerate(proposals)]
    y = np.array([bool(p.valid) for p in proposals])
    n_splits = min(n_splits, len(set(groups)))
    pred = np.zeros(len(y), dtype=bool)
    prob = np.zeros(len(y))
    folds = []
    for k, (tr, te) in enumerate(GroupKFold(n_splits).split(np.zeros(len(y)), y, groups)):
        model = make_model().fit([proposals[i] for i in tr])
        prob[te] = model.predict_proba([proposals[i] for i in te])
        pred[te] = prob[te] >= model.threshold_
        folds.append(reward_model_metrics([proposals[i] for i in te], pred[te]))
        if progress:
            progress(k + 1, n_splits)
    pooled = reward_model_metrics(proposals, pred)
    f1s = [f["f1"] for f in folds]
    accept_all = reward_model_metrics(proposals, [True] * len(proposals))
    return {"pooled": pooled, "folds": folds, "f1_mean": float(np.mean(f1s)), "f1_sd": float(np.std(f1s)),
            "accept_all": accept_all, "people": annotator_agreement(proposals), "probabilities": prob.tolist()}
