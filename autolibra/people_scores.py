"""The scores people gave, as targets for a judge that learns each metric from them.

A note may carry numbers besides its text: Sotopia's raters score an agent
on seven dimensions (`metadata["scores"]`), an annotator rates a run 1-5.
Which number a metric is about is read off its own remarks: the score that
best tells the notes its remarks praise from those they criticise (area
under the ROC curve), when it tells them apart well enough. No dimension
names are assumed, so the same works for any scores a team collects.

A score is a metric's only when it is about that metric: it must tell the
metric's remarks apart clearly better than it tells the other metrics' remarks
apart. An overall rating goes with every remark's sign, so it passes the first
test for nearly every metric; learnt as each metric's target, it made every
metric a copy of "overall quality" (on the demo's release comparison, a
regressed behaviour read as improved because the runs were better overall).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from autolibra.aspects import Aspect
from metrics.judges.trained import view_key


def note_scores(note: Any) -> dict[str, float]:
    """The numbers a note gives: its metadata's scores, and its rating."""
    out = {}
    for k, v in ((note.metadata or {}).get("scores") or {}).items():
        if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v):
            out[str(k)] = float(v)
    if getattr(note, "rating", None) is not None:
        out["rating"] = float(note.rating)
    return out


def score_keys(aspects: Sequence[Aspect], metric_of: Sequence[str | None], notes: Sequence[Any],
               siblings: dict[str, str] | None = None, min_auc: float = 0.65, min_each: int = 4,
               min_lift: float = 0.05) -> dict[str, str]:
    """metric id -> the score its praised and criticised remarks differ on most (AUC >= min_auc),
    and at least `min_lift` more than the remarks of every other metric do (AUC on those).

    A topic split into a praised and a criticised facet (`siblings`: metric id ->
    the other facet's) is read off both facets' remarks together.
    """
    siblings = siblings or {}
    by_id = {n.feedback_id: note_scores(n) for n in notes}
    found: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for a, m in zip(aspects, metric_of, strict=True):
        if m is None or a.sign == 0:
            continue
        for k, v in by_id.get(a.feedback_id, {}).items():
            found[m][k].append((a.sign, v))
    out = {}
    for m in sorted(found):
        topic = {m, siblings.get(m, "")}
        per_key = {k: v + found.get(siblings.get(m, ""), {}).get(k, []) for k, v in found[m].items()}
        best, best_auc = None, min_auc
        for k, pairs in sorted(per_key.items()):
            auc = _auc(pairs, min_each)
            rest = _auc([p for other, keys in found.items() if other not in topic for p in keys.get(k, [])],
                        min_each)
            if auc is not None and auc > best_auc and (rest is None or auc >= rest + min_lift):
                best, best_auc = k, auc
        if best is not None:
            out[m] = best
    return out


def _auc(pairs: Sequence[tuple[int, float]], min_each: int) -> float | None:
    """How well the score tells the praised remarks from the criticised (None: too few of either)."""
    signs = np.array([s > 0 for s, _ in pairs], dtype=bool)
    if min(signs.sum(), (~signs).sum()) < min_each:
        return None
    return float(roc_auc_score(signs, [v for _, v in pairs]))


def targets(notes: Sequence[Any], keys: dict[str, str]) -> dict[tuple[str, str], float]:
    """(view key, metric id) -> the mean over people of the score each metric learns."""
    sums: dict[tuple[str, str], list[float]] = defaultdict(list)
    for n in notes:
        given = note_scores(n)
        for m, k in keys.items():
            if k in given:
                sums[(view_key(n.run_id, n.focus), m)].append(given[k])
    return {key: float(np.mean(v)) for key, v in sums.items()}


def praised_share(aspects: Sequence[Aspect], metric_of: Sequence[str | None]) -> dict[str, float]:
    """metric id -> the share of its signed remarks that praise."""
    signs: dict[str, list[int]] = defaultdict(list)
    for a, m in zip(aspects, metric_of, strict=True):
        if m is not None and a.sign != 0:
            signs[m].append(a.sign)
    return {m: float(np.mean([s > 0 for s in v])) for m, v in signs.items()}
