"""What the trained judge reads from a run's steps, computed for all runs at once over their stacked vectors.

How close a run's steps come to a metric's good and bad examples (`Anchors`),
and how they lean towards the steps people pointed at when they praised rather
than criticised the metric on other runs (`Evidence`): segment reductions over
every step of every run (`StepVectors`), not a loop run by run.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metrics.judges.base import RunView


@dataclass(frozen=True)
class Anchors:
    """A metric's good and bad examples as vectors, and their texts (what the memo keys by)."""

    good: np.ndarray
    bad: np.ndarray
    texts: tuple[tuple[str, ...], tuple[str, ...]]


TOKENS = itertools.count()  # names vectors and projections in a memo's keys: unlike id(), never reused
BEHAVIOUR_FEATURES = 5  # closeness to the good and bad examples, their difference, the evidence lean both ways


class StepVectors:
    """Every run's step vectors stacked, and what the judge's features need from them per run.

    Features per run: the mean step vector, and the closest any step comes to a metric's good
    and bad examples (with the step that does). Computed for all runs at once over the stacked
    steps (segment reductions), not run by run.
    """

    def __init__(self, E: np.ndarray, lengths: np.ndarray, run_ids: Sequence[str],  # noqa: N803
                 distinct: tuple[np.ndarray, np.ndarray] | None = None):
        self.token = next(TOKENS)  # names these vectors in a memo's keys, unlike id(), never reused
        self.E = E
        # the distinct vectors and, per step, which one it is (E == U[inverse]): what is compared
        self.U, self.inverse = distinct if distinct is not None else (E, np.arange(len(E)))
        self.lengths = lengths
        self.run_ids = list(run_ids)
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else \
            np.zeros(0, np.int64)
        self.full = lengths > 0
        # each run's rows in E (one block per view of it: a run judged per actor has several)
        self.rows_of: dict[str, list[tuple[int, int]]] = {}
        for r, a, n in zip(self.run_ids, self.starts.tolist(), lengths.tolist(), strict=True):
            if n:
                self.rows_of.setdefault(r, []).append((a, a + n))
        dim = E.shape[1] if E.ndim == 2 else 1
        self.means = np.zeros((len(lengths), dim), dtype=np.float64)
        if self.full.any() and len(E):
            sums = np.add.reduceat(E.astype(np.float64), self.starts[self.full], axis=0)
            self.means[self.full] = sums / lengths[self.full, None]

    def _closest(self, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per run, the highest similarity of a step to any of `ref` (0 without one) and that step (-1)."""
        n = len(self.lengths)
        best, where = np.zeros(n), np.full(n, -1, dtype=np.int64)
        if not ref.size or not len(self.E) or ref.shape[1] != self.E.shape[1]:
            return best, where
        per_step = (self.U @ ref.T).max(axis=1)[self.inverse]
        starts = self.starts[self.full]
        best[self.full] = np.maximum.reduceat(per_step, starts)
        # the first step of each run reaching its maximum, as argmax gives
        owner = np.repeat(np.arange(n), self.lengths)
        at = np.where(per_step >= best[owner], np.arange(len(per_step)), len(per_step))
        where[self.full] = np.minimum.reduceat(at, starts) - starts
        return best, where

    def closest(self, anchors: Anchors) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per run, how close its closest steps come to the good and the bad examples, and those steps."""
        sg, at_good = self._closest(anchors.good)
        sb, at_bad = self._closest(anchors.bad)
        return sg, sb, at_good, at_bad

    def near_evidence(self, evidence: Evidence) -> tuple[np.ndarray, np.ndarray]:
        """Per run, its most praise-like and its most criticism-like step, as judged by other runs' evidence.

        Each step's lean is how much closer it comes to the praised evidence than
        to the criticised (nearest of each); a run's features are its steps'
        highest and lowest lean. Closeness alone does not tell: the steps every run
        has (the request, the same tool call) are evidence of both signs.
        A run's own evidence is left out: fitting on it, every labelled run would
        find its own steps and the classifier would learn to trust a closeness of 1.
        """
        n = len(self.lengths)
        top, bottom = np.zeros(n), np.zeros(n)
        V = evidence.vectors  # noqa: N806
        if not len(V) or not len(self.E) or V.shape[1] != self.E.shape[1] or not self.full.any():
            return top, bottom
        V = V.astype(self.E.dtype, copy=False)  # noqa: N806 - not an upcast copy of every step
        pos = evidence.signs == 1
        lean = _lean(self.U @ V.T, pos)[self.inverse]
        # Then the steps of the runs the evidence came from, again without their own run's: a
        # run's steps are contiguous rows, masked a block at a time.
        columns: dict[str, list[int]] = {}
        for j, owner in enumerate(evidence.owners):
            columns.setdefault(owner, []).append(j)
        blocks = [(a, b, cols) for owner, cols in columns.items() for a, b in self.rows_of.get(owner, ())]
        if blocks:
            rows = np.concatenate([np.arange(a, b) for a, b, _ in blocks])
            S = self.E[rows] @ V.T  # noqa: N806
            at = 0
            for a, b, cols in blocks:
                S[at:at + b - a, cols] = -1.0
                at += b - a
            lean[rows] = _lean(S, pos)
        starts = self.starts[self.full]
        top[self.full] = np.maximum.reduceat(lean, starts)
        bottom[self.full] = np.minimum.reduceat(lean, starts)
        return top, bottom


NEAR_K = 5  # evidence steps a step is compared with, per sign


def _lean(S: np.ndarray, praised: np.ndarray) -> np.ndarray:  # noqa: N803
    """Per row of similarities to evidence steps, how much nearer it is to the praised than the criticised."""
    return _near(S[:, praised]) - _near(S[:, ~praised])


def _near(S: np.ndarray, k: int = NEAR_K) -> np.ndarray:  # noqa: N803
    """Per row, the mean of its `k` highest similarities (0 without a column).

    Not the single highest: one mislabelled evidence step (a person who praised a run
    that did the thing, or criticised one that did not) would otherwise give every
    step like it the opposite lean, and one such step among a metric's evidence is
    common.
    """
    if not S.shape[1]:
        return np.zeros(len(S))
    k = min(k, S.shape[1])
    return np.partition(S, S.shape[1] - k, axis=1)[:, -k:].mean(axis=1)


@dataclass(frozen=True)
class Evidence:
    """The steps people pointed at on one metric: their vectors, runs and signs, and what a memo keys them by."""

    vectors: np.ndarray
    owners: tuple[str, ...]
    signs: np.ndarray
    key: tuple


NO_EVIDENCE = Evidence(np.zeros((0, 1)), (), np.zeros(0, dtype=np.int64), ())
MAX_EVIDENCE = 64  # steps per sign and metric: closeness to more costs more and adds little


def evidence_steps(steps: StepVectors, idxs: list[list[int]], views: Sequence[RunView], keys: Sequence[str], y: np.ndarray,
              metric_id: str, evidence: dict[tuple[str, str], tuple[int, ...]], seed: int) -> Evidence:
    """A metric's evidence steps on the fitted views, at most MAX_EVIDENCE of each sign (a seeded sample)."""
    found: dict[int, list[tuple[int, str, int]]] = {1: [], -1: []}  # sign -> (row in steps.E, run, step)
    for i, (v, key) in enumerate(zip(views, keys, strict=True)):
        if not y[i]:
            continue
        pos = {j: k for k, j in enumerate(idxs[i])}
        for j in evidence.get((key, metric_id), ()):
            if j in pos and steps.lengths[i]:
                found[int(y[i])].append((int(steps.starts[i] + pos[j]), v.run_id, j))
    rng = np.random.default_rng(seed)
    chosen = []
    for sign, items in found.items():
        items = sorted(set(items))
        if len(items) > MAX_EVIDENCE:
            items = [items[k] for k in sorted(rng.choice(len(items), MAX_EVIDENCE, replace=False))]
        chosen += [(row, run, j, sign) for row, run, j in items]
    if not chosen:
        return NO_EVIDENCE
    return Evidence(steps.E[[c[0] for c in chosen]], tuple(c[1] for c in chosen),
                     np.array([c[3] for c in chosen]), (steps.token, tuple((c[1], c[2], c[3]) for c in chosen)))
