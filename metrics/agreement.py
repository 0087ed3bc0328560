"""Inter-annotator agreement: Krippendorff's alpha, and the one way Libra measures it on queues.

Ratings are 1-5 scales whose steps are not known to be equal, so agreement on
them is measured at the ordinal level (RATING_LEVEL), everywhere: the Queues
page and the Dashboards page call `queue_agreement` and show the same number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from traces.store import Store

RATING_LEVEL = "ordinal"


def krippendorff_alpha(units: Sequence[Sequence[float]], level: str = "interval") -> float | None:
    """Alpha over units (one list of values per rated item; missing ratings simply absent).

    Units with fewer than two values carry no information about agreement and are
    dropped. None when fewer than two values remain or nothing varies.
    level: "interval" (squared differences), "ordinal" or "nominal".
    """
    units = [list(u) for u in units if len(u) >= 2]
    if not units:
        return None
    values = sorted({v for u in units for v in u})
    if len(values) < 2:
        return 1.0 if units else None
    idx = {v: i for i, v in enumerate(values)}
    k = len(values)
    o = np.zeros((k, k))  # coincidence matrix
    for u in units:
        m = len(u)
        for a in range(m):
            for b in range(m):
                if a != b:
                    o[idx[u[a]], idx[u[b]]] += 1.0 / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if level == "nominal":
        d = 1.0 - np.eye(k)
    elif level == "ordinal":
        d = np.zeros((k, k))
        for c in range(k):
            for e in range(k):
                lo, hi = min(c, e), max(c, e)
                d[c, e] = (n_c[lo:hi + 1].sum() - (n_c[c] + n_c[e]) / 2.0) ** 2
    else:
        arr = np.array(values, dtype=float)
        d = (arr[:, None] - arr[None, :]) ** 2
    d_o = (o * d).sum() / n
    d_e = (np.outer(n_c, n_c) * d).sum() / (n * (n - 1))
    if d_e == 0:
        return None
    return float(1.0 - d_o / d_e)


@dataclass(frozen=True)
class QueueAgreement:
    queue_id: str
    alpha: float | None
    level: str
    runs_rated: int
    runs_with_overlap: int  # rated by two or more of the queue's annotators
    ratings: int


def queue_agreement(store: Store, queue_id: str) -> QueueAgreement:
    """Alpha on the ratings the queue's own annotators gave its runs (one per person and run: their mean)."""
    rows = store.execute(
        "SELECT f.run_id, f.author, avg(f.rating) FROM feedback f "
        "JOIN queue_assignments a ON a.run_id = f.run_id AND a.username = f.author AND a.queue_id = ? "
        "WHERE f.rating IS NOT NULL AND f.deleted_at IS NULL GROUP BY ALL", [queue_id])
    units: dict[str, list[float]] = {}
    for run_id, _, rating in rows:
        units.setdefault(run_id, []).append(float(rating))
    return QueueAgreement(queue_id, krippendorff_alpha(list(units.values()), RATING_LEVEL), RATING_LEVEL,
                          len(units), sum(1 for u in units.values() if len(u) >= 2),
                          sum(len(u) for u in units.values()))
