"""Inter-annotator agreement: Krippendorff's alpha."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
