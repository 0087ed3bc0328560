"""Release comparison, composed: metric differences, PIPA stages and proactivity of two releases.

    c = libra.compare(store, "travel-concierge@v1", "travel-concierge@v2")
    c.table()                                   # per metric: scores, B − A, interval, Holm p, verdict
    libra.compare_report(c, "markdown")         # for a pull request
"""

from __future__ import annotations

import pandas as pd

from metrics.compare import Comparison
from metrics.compare import compare as compare_metrics
from metrics.reports import release
from pipa.profile import NAMES, agent_profile
from pipa.proactive.scoring import agent_report
from traces.store import Store


class NoScores(LookupError):
    """No approved metric set has scored runs of both releases."""


def releases(store: Store) -> list[str]:
    """Agent names with runs, for pickers."""
    return [a for (a,) in store.execute("SELECT DISTINCT agent FROM runs WHERE agent IS NOT NULL ORDER BY 1")]


def scored_sets(store: Store, a: str, b: str) -> pd.DataFrame:
    """Approved set versions with scores on both releases, the most runs in common first."""
    return store.df(
        """
        SELECT s.metric_set_id AS set_id, s.metric_set_version AS version, m.name,
               count(DISTINCT s.run_id) FILTER (WHERE s.agent = ?) AS runs_a,
               count(DISTINCT s.run_id) FILTER (WHERE s.agent = ?) AS runs_b
        FROM scores s JOIN metric_sets m ON m.set_id = s.metric_set_id AND m.version = s.metric_set_version
        WHERE s.agent IN (?, ?) AND m.status = 'approved' AND m.approved_by IS NOT NULL
          AND coalesce(json_extract_string(m.provenance, '$.kind'), '') NOT IN ('pipa', 'proactivity')
        GROUP BY ALL HAVING runs_a > 0 AND runs_b > 0
        ORDER BY least(runs_a, runs_b) DESC, set_id, version DESC
        """, [a, b, a, b])


def compare(store: Store, a: str, b: str, *, set_id: str | None = None, version: int | None = None,
            alpha: float = 0.05, seed: int = 0) -> Comparison:
    """Release `b` against `a` on an approved metric set, with PIPA stages and proactivity side by side.

    Without `set_id`, the approved set that scored the most runs of both; without
    `version`, that set's newest version with scores on both. Raises `NoScores`
    when nothing scored both, `KeyError` when a release has no runs.
    """
    known = set(releases(store))
    for name in (a, b):
        if name not in known:
            raise KeyError(f"no runs of agent {name!r}; agents in the store: {', '.join(sorted(known)) or 'none'}")
    options = scored_sets(store, a, b)
    if set_id is not None:
        options = options[options["set_id"] == set_id]
    if version is not None:
        options = options[options["version"] == version]
    if options.empty:
        raise NoScores(f"no approved metric set has scored runs of both {a} and {b}; run `libra score` first")
    row = options.iloc[0]
    c = compare_metrics(store, a, b, str(row["set_id"]), int(row["version"]), alpha=alpha, seed=seed)
    return Comparison(**{**c.__dict__, "pipa": _pipa(store, a, b), "proactive": _proactive(store, a, b)})


def _pipa(store: Store, a: str, b: str) -> pd.DataFrame:
    prof = agent_profile(store, [a, b])
    if prof.empty or "rate" not in prof.columns:
        return pd.DataFrame()
    wide = prof.pivot_table(index="metric_id", columns="agent", values="rate", aggfunc="first")
    if a not in wide.columns or b not in wide.columns:
        return pd.DataFrame()
    out = pd.DataFrame({"criterion": [NAMES.get(i, i) for i in wide.index], "A": wide[a].to_numpy(),
                        "B": wide[b].to_numpy()})
    return out.assign(**{"B − A": out["B"] - out["A"]}).dropna(subset=["A", "B"], how="all")


def _proactive(store: Store, a: str, b: str) -> pd.DataFrame:
    sets_ = store.execute("SELECT DISTINCT metric_set_id FROM score_units WHERE reason IN ('TP', 'FP', 'TN', 'FN')")
    frames = [agent_report(store, s) for (s,) in sets_]
    df = pd.concat([f for f in frames if not f.empty], ignore_index=True) if any(not f.empty for f in frames) \
        else pd.DataFrame()
    if df.empty:
        return df
    df = df[df["agent"].isin([a, b])]
    keep = [c for c in ("agent", "runs", "tp", "fp", "tn", "fn", "precision", "recall", "false_alarm") if c in df]
    return df[keep].reset_index(drop=True)


def compare_report(c: Comparison, fmt: str = "markdown") -> str:
    """The comparison as `markdown` (for a pull request) or a standalone `html` page."""
    if fmt == "markdown":
        return release.to_markdown(c)
    if fmt == "html":
        return release.to_html(c)
    raise ValueError("format must be markdown or html")
