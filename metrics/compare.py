"""Release comparison: is B better than A, on which metrics, and which runs show it.

Per metric of one scored set version, each run's verdicts (a run may have
several, one per focus) become its pass rate; the two releases' mean rates are
compared. Where the same tasks were run by both releases, the comparison is
paired by task (the per-task difference, so a harder mix of tasks in one
release does not pass for a regression); otherwise the runs are two independent
samples. The interval is a bootstrap percentile interval and the p-value a
permutation test (scipy's), both seeded; p-values are corrected for the number
of metrics compared with Holm's step-down, which keeps the chance of flagging
any metric that did not change below `alpha`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from traces.store import Store

RESAMPLES = 4999
MIN_PAIRS = 8  # fewer tasks in common than this and the comparison is unpaired


@dataclass(frozen=True)
class Example:
    """Two runs, one per release, that show a difference on a metric (the same task when paired)."""
    run_a: str
    run_b: str
    rate_a: float
    rate_b: float
    task: str | None


@dataclass(frozen=True)
class MetricDiff:
    metric_id: str
    name: str
    n_a: int
    n_b: int
    score_a: float
    score_b: float
    diff: float  # score_b - score_a
    lo: float
    hi: float
    p: float
    p_adjusted: float
    significant: bool
    paired: bool
    pairs: int  # tasks in common used when paired
    examples: tuple[Example, ...] = ()

    @property
    def verdict(self) -> str:
        if not self.significant:
            return "no clear change"
        return "better" if self.diff > 0 else "worse"


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    set_id: str
    version: int
    alpha: float
    metrics: tuple[MetricDiff, ...]
    runs_a: int
    runs_b: int
    pipa: pd.DataFrame = field(default_factory=pd.DataFrame)  # criterion × release pass rates
    proactive: pd.DataFrame = field(default_factory=pd.DataFrame)  # per release: TP/FP/TN/FN

    def table(self) -> pd.DataFrame:
        """One row per metric: both scores, the difference with its interval, p and the verdict."""
        return pd.DataFrame([{
            "metric": m.name, "metric_id": m.metric_id, "n_a": m.n_a, "n_b": m.n_b, "score_a": m.score_a,
            "score_b": m.score_b, "diff": m.diff, "lo": m.lo, "hi": m.hi, "p": m.p, "p_adjusted": m.p_adjusted,
            "significant": m.significant, "verdict": m.verdict, "paired": m.paired, "pairs": m.pairs,
        } for m in self.metrics], columns=["metric", "metric_id", "n_a", "n_b", "score_a", "score_b", "diff", "lo",
                                           "hi", "p", "p_adjusted", "significant", "verdict", "paired", "pairs"])

    @property
    def improved(self) -> list[str]:
        return [m.metric_id for m in self.metrics if m.verdict == "better"]

    @property
    def regressed(self) -> list[str]:
        return [m.metric_id for m in self.metrics if m.verdict == "worse"]


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (scipy has Benjamini–Hochberg only, which bounds a different error)."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def _task_key(task: object) -> str | None:
    if not isinstance(task, str) or not task.strip():
        return None
    return re.sub(r"\s+", " ", task.strip().lower())


def run_rates(store: Store, agents: list[str], set_id: str, version: int) -> pd.DataFrame:
    """Per run of the given agents and metric: its pass rate over its non-abstaining verdicts."""
    return store.df(
        """
        SELECT s.run_id, r.agent, r.task, s.metric_id, coalesce(d.name, s.metric_id) AS name,
               count(*) FILTER (WHERE s.value > 0) AS pos, count(*) FILTER (WHERE s.value < 0) AS neg
        FROM scores s JOIN runs r USING (run_id)
        LEFT JOIN metric_defs d ON d.set_id = s.metric_set_id AND d.version = s.metric_set_version
                                AND d.metric_id = s.metric_id
        WHERE s.metric_set_id = ? AND s.metric_set_version = ? AND r.agent IN (SELECT unnest(?::VARCHAR[]))
        GROUP BY ALL HAVING pos + neg > 0
        """, [set_id, version, agents]).assign(rate=lambda d: d["pos"] / (d["pos"] + d["neg"]))


def _diff_stats(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Unpaired: mean(y) - mean(x), its bootstrap interval and a two-sided permutation p-value."""
    d = float(y.mean() - x.mean())
    if len(x) < 2 or len(y) < 2:  # too few runs to say anything: no interval, never significant
        return d, float("nan"), float("nan"), 1.0
    if np.ptp(np.concatenate([x, y])) == 0:  # every run alike: no difference and no spread
        return d, d, d, 1.0

    def stat(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(np.mean(b, axis=axis) - np.mean(a, axis=axis))

    ci = stats.bootstrap((x, y), stat, n_resamples=RESAMPLES, method="percentile", random_state=rng,
                         vectorized=True).confidence_interval
    p = stats.permutation_test((x, y), stat, permutation_type="independent", n_resamples=RESAMPLES,
                               vectorized=True, random_state=rng).pvalue
    return d, float(ci.low), float(ci.high), float(p)


def _paired_stats(d: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Paired by task: the mean difference, its bootstrap interval and a sign-flip permutation p-value."""
    mean = float(d.mean())
    if np.ptp(d) == 0:
        return mean, mean, mean, 1.0 if mean == 0 else 0.0
    ci = stats.bootstrap((d,), np.mean, n_resamples=RESAMPLES, method="percentile", random_state=rng,
                         vectorized=True).confidence_interval
    p = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=RESAMPLES,
                               vectorized=True, random_state=rng).pvalue
    return mean, float(ci.low), float(ci.high), float(p)


def _examples(ra: pd.DataFrame, rb: pd.DataFrame, better: bool, k: int) -> tuple[Example, ...]:
    """Runs that show the change: the worse side's lowest rates against the better side's highest,
    the same task first."""
    lo_side, hi_side = (ra, rb) if better else (rb, ra)
    lo_side = lo_side.sort_values(["rate", "run_id"])
    hi_side = hi_side.sort_values(["rate", "run_id"], ascending=[False, True])
    out: list[Example] = []
    used: set[str] = set()
    by_task = {t: g for t, g in hi_side.groupby("task_key", sort=False)}
    for r in lo_side.itertuples(index=False):
        g = by_task.get(r.task_key)
        if g is None or r.rate >= 0.5:
            continue
        top = g[~g["run_id"].isin(used)]
        if top.empty or top.iloc[0]["rate"] <= r.rate:
            continue
        h = top.iloc[0]
        used.update([r.run_id, h["run_id"]])
        out.append(_example(r.run_id, h["run_id"], float(r.rate), float(h["rate"]), r.task, better))
        if len(out) == k:
            return tuple(out)
    lows = [r for r in lo_side.itertuples(index=False) if r.run_id not in used and r.rate < 0.5]
    highs = [r for r in hi_side.itertuples(index=False) if r.run_id not in used and r.rate > 0.5]
    for lo_r, hi_r in zip(lows, highs, strict=False):
        out.append(_example(lo_r.run_id, hi_r.run_id, float(lo_r.rate), float(hi_r.rate), None, better))
        if len(out) == k:
            break
    return tuple(out)


def _example(lo_run: str, hi_run: str, lo_rate: float, hi_rate: float, task: str | None, better: bool) -> Example:
    if better:
        return Example(lo_run, hi_run, lo_rate, hi_rate, task)
    return Example(hi_run, lo_run, hi_rate, lo_rate, task)


def compare(store: Store, a: str, b: str, set_id: str, version: int, *, alpha: float = 0.05, seed: int = 0,
            examples: int = 3) -> Comparison:
    """Release `b` against release `a` (agent names as stored) on every metric of one scored set version."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    df = run_rates(store, [a, b], set_id, version)
    df["task_key"] = df["task"].map(_task_key)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for metric_id, g in df.groupby("metric_id", sort=True):
        ga, gb = g[g["agent"] == a], g[g["agent"] == b]
        if ga.empty or gb.empty:
            continue
        ta = ga.groupby("task_key")["rate"].mean()
        tb = gb.groupby("task_key")["rate"].mean()
        common = ta.index.intersection(tb.index)
        paired = len(common) >= MIN_PAIRS
        if paired:
            diff, lo, hi, p = _paired_stats((tb[common] - ta[common]).to_numpy(), rng)
        else:
            diff, lo, hi, p = _diff_stats(ga["rate"].to_numpy(), gb["rate"].to_numpy(), rng)
        rows.append(dict(metric_id=str(metric_id), name=str(g["name"].iloc[0]), n_a=len(ga), n_b=len(gb),
                         score_a=float(ga["pos"].sum() / (ga["pos"].sum() + ga["neg"].sum())),
                         score_b=float(gb["pos"].sum() / (gb["pos"].sum() + gb["neg"].sum())),
                         diff=diff, lo=lo, hi=hi, p=p, paired=paired, pairs=len(common) if paired else 0,
                         ga=ga, gb=gb))
    adjusted = holm(np.array([r["p"] for r in rows])) if rows else np.array([])
    metrics = []
    for r, p_adj in zip(rows, adjusted, strict=True):
        ga, gb = r.pop("ga"), r.pop("gb")
        significant = bool(p_adj < alpha)
        ex = _examples(ga, gb, r["diff"] > 0, examples) if significant else ()
        metrics.append(MetricDiff(**r, p_adjusted=float(p_adj), significant=significant, examples=ex))
    counts = store.df("SELECT agent, count(*) AS n FROM runs WHERE agent IN (?, ?) GROUP BY agent", [a, b])
    n = dict(zip(counts["agent"], counts["n"], strict=True))
    return Comparison(a, b, set_id, version, alpha, tuple(metrics), int(n.get(a, 0)), int(n.get(b, 0)))
