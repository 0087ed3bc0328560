"""The coverage–redundancy frontier: which candidate metric sets no other one beats on both.

One implementation for the three places that need it: choosing a set at the
end of induction, `Induction.frontier()` in a notebook, and the Metrics page,
which draws it from the rows a saved set keeps in its provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

SPLITS = (("train", "train"), ("held-out", "heldout"))  # (label, key in a frontier row)


def pareto(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (coverage, redundancy) points: whether no other point has more coverage and less redundancy."""
    def dominated(c: float, r: float) -> bool:
        return any(oc >= c and orr <= r and (oc > c or orr < r) for oc, orr in points)
    return [not dominated(c, r) for c, r in points]


def frontier_frame(rows: Sequence[dict[str, Any]], chosen: dict[str, Any] | None) -> pd.DataFrame:
    """Long form, one row per candidate and split, with `chosen` and `pareto` (within its split).

    `rows` are provenance["frontier"] entries: the search parameters, `metrics`,
    and the `train` and `heldout` evaluation rows.
    """
    out = []
    for c in rows:
        params = {k: v for k, v in c.items() if k not in ("train", "heldout", "metrics")}
        for split, key in SPLITS:
            out.append({**params, "split": split, "metrics": c["metrics"], "chosen": params == chosen, **c[key]})
    df = pd.DataFrame(out)
    if df.empty:
        return df
    df["pareto"] = False
    for split in df["split"].unique():
        part = df[df["split"] == split]
        df.loc[part.index, "pareto"] = pareto(list(zip(part["coverage"], part["redundancy"], strict=True)))
    return df
