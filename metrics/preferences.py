"""What pairwise preferences say: a Bradley–Terry ranking, agreement, and pairwise judges.

- `bradley_terry`: each agent's (or release's) strength from who was preferred over whom,
  fitted by choix (Luce spectral ranking, lightly regularised, so an agent that always wins
  has a finite strength), with a bootstrap interval over the preferences.
- `agreement`: on pairs two or more people labelled, how often two people chose alike
  (a tie is its own answer), and Krippendorff's alpha (nominal) over the pairs.
- Judges answer the same question: `MetricPairJudge` from the verdicts a scored metric set
  gave each run (offline), `LLMPairJudge` by asking the model with both runs as data.
  `judge_agreement` compares a judge with people exactly as people are compared with each
  other, so the two figures sit side by side.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import choix
import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.linear_model import LogisticRegression

from metrics.agreement import krippendorff_alpha
from metrics.llm.client import LLM, Request
from metrics.llm.prompts import DATA_NOTICE, data_block, render_steps
from traces.model import Run
from traces.store import Store


def _outcome(row: Sequence[object]) -> int:
    """A preference as +1 (the run with the smaller id won), -1 (the other), 0 (tie): sides shown do not matter."""
    run_a, run_b, choice = str(row[0]), str(row[1]), str(row[2])
    if choice == "tie":
        return 0
    winner = run_a if choice == "a" else run_b
    return 1 if winner == min(run_a, run_b) else -1


def _latest(prefs: pd.DataFrame) -> pd.DataFrame:
    """Each person's newest label of each pair (a person who changed their mind counts once)."""
    return prefs.sort_values("created_at").groupby(["pair_id", "author"], as_index=False).last()


def bradley_terry(prefs: pd.DataFrame, *, by: tuple[str, str] = ("agent_a", "agent_b"), resamples: int = 300,
                  alpha: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """Per item (agent by default): strength (log scale, mean 0), its 95% bootstrap interval, wins,
    losses, ties, and rank. A tie counts half a win each way."""
    a_col, b_col = by
    items = sorted(set(prefs[a_col].dropna()) | set(prefs[b_col].dropna()))
    if len(items) < 2:
        return pd.DataFrame(columns=["item", "strength", "lo", "hi", "wins", "losses", "ties", "comparisons", "rank"])
    index = {x: i for i, x in enumerate(items)}
    rows = prefs.dropna(subset=[a_col, b_col])
    rows = rows[rows[a_col] != rows[b_col]]
    comps = []  # (winner, loser, weight)
    for a, b, choice in zip(rows[a_col], rows[b_col], rows["choice"], strict=True):
        ia, ib = index[a], index[b]
        if choice == "a":
            comps.append((ia, ib, 1.0))
        elif choice == "b":
            comps.append((ib, ia, 1.0))
        else:
            comps += [(ia, ib, 0.5), (ib, ia, 0.5)]

    def fit(sample: Sequence[tuple[int, int, float]]) -> np.ndarray:
        # choix takes unweighted comparisons: a half-weight tie enters as one of two doubled wins
        data = [(w, lo) for w, lo, wt in sample for _ in range(int(round(wt * 2)))]
        params = choix.ilsr_pairwise(len(items), data, alpha=alpha)
        return np.asarray(params - params.mean())

    strength = fit(comps)
    rng = np.random.default_rng(seed)
    boots = np.array([fit([comps[i] for i in rng.integers(0, len(comps), len(comps))]) for _ in range(resamples)]) \
        if comps else np.zeros((0, len(items)))
    out = pd.DataFrame({"item": items, "strength": strength,
                        "lo": np.percentile(boots, 2.5, axis=0) if len(boots) else np.nan,
                        "hi": np.percentile(boots, 97.5, axis=0) if len(boots) else np.nan})
    wins = pd.Series(0.0, index=items)
    losses = pd.Series(0.0, index=items)
    ties = pd.Series(0, index=items)
    for a, b, choice in zip(rows[a_col], rows[b_col], rows["choice"], strict=True):
        if choice == "tie":
            ties[a] += 1
            ties[b] += 1
        else:
            w, lo = (a, b) if choice == "a" else (b, a)
            wins[w] += 1
            losses[lo] += 1
    out["wins"] = out["item"].map(wins).astype(int)
    out["losses"] = out["item"].map(losses).astype(int)
    out["ties"] = out["item"].map(ties).astype(int)
    out["comparisons"] = out["wins"] + out["losses"] + out["ties"]
    out = out.sort_values("strength", ascending=False).reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out


@dataclass(frozen=True)
class Agreement:
    pairs: int  # pairs with two or more people's labels
    comparisons: int  # person-pairs compared
    rate: float | None  # share of person-pairs that chose alike
    alpha: float | None  # Krippendorff's alpha, nominal


def agreement(prefs: pd.DataFrame) -> Agreement:
    """How much people agree on the pairs several of them labelled (each person's newest label)."""
    latest = _latest(prefs)
    units, same, total = [], 0, 0
    for _, g in latest.groupby("pair_id"):
        if len(g) < 2:
            continue
        outcomes = [_outcome(r) for r in g[["run_a", "run_b", "choice"]].itertuples(index=False)]
        units.append(outcomes)
        for x, y in itertools.combinations(outcomes, 2):
            same += x == y
            total += 1
    return Agreement(len(units), total, same / total if total else None,
                     krippendorff_alpha(units, level="nominal") if units else None)


@dataclass(frozen=True)
class PairVerdict:
    pair_id: str
    run_a: str
    run_b: str
    choice: str  # a | b | tie, for the runs in this order
    reason: str = ""
    error: str | None = None


def judge_agreement(prefs: pd.DataFrame, verdicts: Sequence[PairVerdict]) -> dict[str, float | int | None]:
    """A judge against people, as people against each other: the share of (judge, person) pairs that chose
    alike, beside the share of (person, person) pairs on the same pairs; and the same for a judge that
    always says the shown-left run (a baseline reading nothing)."""
    latest = _latest(prefs)
    judged = {v.pair_id: _outcome((v.run_a, v.run_b, v.choice)) for v in verdicts if v.error is None}
    jp = jp_same = pp = pp_same = left = 0
    for pid, g in latest.groupby("pair_id"):
        people = [_outcome(r) for r in g[["run_a", "run_b", "choice"]].itertuples(index=False)]
        if pid in judged:
            jp += len(people)
            jp_same += sum(judged[pid] == p for p in people)
        first = g.iloc[0]
        always_left = _outcome((first["run_a"], first["run_b"], "a"))
        left += sum(always_left == p for p in people)
        for x, y in itertools.combinations(people, 2):
            pp += 1
            pp_same += x == y
    return {"judge_vs_people": jp_same / jp if jp else None, "judge_comparisons": jp,
            "people_vs_people": pp_same / pp if pp else None, "people_comparisons": pp,
            "always_left_vs_people": left / len(latest) if len(latest) else None,
            "pairs_judged": len(judged), "errors": sum(v.error is not None for v in verdicts)}


class MetricPairJudge:
    """Offline: prefers the run a scored metric set judged better.

    Unfitted, by the net verdict: (+1s − −1s) / verdicts, apart by more than `margin`, else a tie.
    Fitted on people's preferences (`fit`), a multinomial logistic regression over the two runs'
    metric-by-metric verdict differences says a, b or tie. It learns which metrics people weigh and how
    often they call a tie, which the net verdict cannot: one metric people care about outweighs five
    they do not. Each label enters in both orders (the difference negated, the choice swapped), so the
    side a run is shown on cannot matter.
    """

    backend = "offline-metrics"
    MIN_LABELS = 12  # below this a fit learns the noise of a handful of choices

    def __init__(self, store: Store, set_id: str, version: int, margin: float = 0.1, C: float = 1.0):  # noqa: N803
        self.store, self.set_id, self.version, self.margin, self.C = store, set_id, version, margin, C
        self.model_: LogisticRegression | None = None
        self.labels_ = 0

    def _scores(self, ids: Sequence[str]) -> pd.DataFrame:
        return self.store.df(
            "SELECT s.run_id, s.metric_id, coalesce(d.name, s.metric_id) AS name, s.value FROM scores s "
            "LEFT JOIN metric_defs d ON d.set_id = s.metric_set_id AND d.version = s.metric_set_version "
            "AND d.metric_id = s.metric_id WHERE s.metric_set_id = ? AND s.metric_set_version = ? "
            "AND s.run_id IN (SELECT unnest(?::VARCHAR[])) AND s.value <> 0",
            [self.set_id, self.version, sorted(set(ids))])

    def _metrics(self) -> list[str]:
        return [str(m) for m in self.store.df(
            "SELECT metric_id FROM metric_defs WHERE set_id = ? AND version = ? ORDER BY metric_id",
            [self.set_id, self.version])["metric_id"]]

    def _matrix(self, ids: Sequence[str], df: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
        """Each run's verdict per metric of the set (0 where it has none), in one fixed metric order.
        `df`: the runs' scores when already read."""
        metrics = self._metrics()
        col = {m: i for i, m in enumerate(metrics)}
        out = {r: np.zeros(len(metrics)) for r in ids}
        df = self._scores(ids) if df is None else df
        for r, m, v in zip(df["run_id"], df["metric_id"], df["value"], strict=True):
            if m in col:
                out[r][col[m]] = float(v)
        return out

    def fit(self, prefs: pd.DataFrame) -> MetricPairJudge:
        """Learn from people's preferences (each person's newest label of each pair). With fewer than
        MIN_LABELS labels, or only one answer among them, the judge stays on the net verdict."""
        latest = _latest(prefs)
        x = self._matrix(sorted(set(latest["run_a"]) | set(latest["run_b"])))
        d = np.array([x[a] - x[b] for a, b in zip(latest["run_a"], latest["run_b"], strict=True)])
        y = np.array([{"a": 1, "b": -1}.get(c, 0) for c in latest["choice"]])
        self.model_, self.labels_ = None, len(y)
        if len(y) < self.MIN_LABELS or len(set(y.tolist())) < 2 or d.ndim < 2 or d.shape[1] == 0:
            return self
        self.model_ = LogisticRegression(C=self.C, max_iter=3000).fit(np.vstack([d, -d]), np.concatenate([y, -y]))
        return self

    def judge(self, pairs: Sequence[tuple[str, str]]) -> list[PairVerdict]:
        from traces.annotation.queues import pair_id

        ids = sorted({r for p in pairs for r in p})
        df = self._scores(ids)
        net = df.groupby("run_id")["value"].mean().to_dict()
        by_run = {r: dict(zip(g["name"], g["value"], strict=True)) for r, g in df.groupby("run_id")}
        x = self._matrix(ids, df) if self.model_ is not None else {}
        out = []
        for a, b in pairs:
            if a not in net and b not in net:
                out.append(PairVerdict(pair_id(a, b), a, b, "tie", error="neither run has a verdict from the set"))
                continue
            va, vb = by_run.get(a, {}), by_run.get(b, {})
            diff = ", ".join([m for m in sorted(set(va) | set(vb)) if va.get(m, 0) != vb.get(m, 0)][:6]) or "nothing"
            if self.model_ is not None:
                p = dict(zip(self.model_.classes_.tolist(), self.model_.predict_proba([x[a] - x[b]])[0], strict=True))
                pa, pb, pt = p.get(1, 0.0), p.get(-1, 0.0), p.get(0, 0.0)
                # runs no metric tells apart are a tie: any other answer would depend on the side shown
                choice = "tie" if pt >= max(pa, pb) or not np.any(x[a] - x[b]) else "a" if pa >= pb else "b"
                reason = (f"fitted on {self.labels_} preferences: P(A) {pa:.2f}, P(B) {pb:.2f}, P(tie) {pt:.2f}; "
                          f"they differ on: {diff}")
            else:
                sa, sb = net.get(a, 0.0), net.get(b, 0.0)
                choice = "a" if sa - sb > self.margin else "b" if sb - sa > self.margin else "tie"
                reason = f"net verdict A {sa:+.2f}, B {sb:+.2f}; they differ on: {diff}"
            out.append(PairVerdict(pair_id(a, b), a, b, choice, reason))
        return out


PAIR_INSTRUCTIONS = """You compare two runs of an AI agent on the same task and say which did better.

{notice}

Judge what the agent did: whether it reached the user's goal, followed the user's constraints,
used tools correctly, stayed truthful to what tools returned, and communicated clearly. Length and
style alone are not better. Answer "tie" when neither is clearly better. Give a short reason that
names the steps that decided it."""


class _Pref(BaseModel):
    choice: Literal["a", "b", "tie"] = Field(description="a, b, or tie")
    reason: str = Field(description="one or two sentences naming the deciding steps")


class LLMPairJudge:
    """Asks the model which of two runs is better, both runs inside delimited data blocks."""

    backend = "llm"

    def __init__(self, llm: LLM, runs: Callable[[Sequence[str]], dict[str, Run]], prompt_version: str = "pair-v1"):
        self.llm, self.runs = llm, runs
        self.version = f"{llm.config.model}/{prompt_version}"

    def request(self, a: Run, b: Run) -> Request:
        parts = []
        if a.task:
            parts.append("Task given to the agent:\n" + data_block("task", a.task))
        parts.append("Run A, one step per line as a JSON object:\n" + data_block("run-a", render_steps(a.steps)))
        parts.append("Run B, one step per line as a JSON object:\n" + data_block("run-b", render_steps(b.steps)))
        parts.append("Call record_preference.")
        return Request(purpose="pairwise", tool_name="record_preference",
                       tool_description="Record which run did better, and why.", schema=_Pref,
                       system=PAIR_INSTRUCTIONS.format(notice=DATA_NOTICE), user="\n\n".join(parts))

    def judge(self, pairs: Sequence[tuple[str, str]]) -> list[PairVerdict]:
        from traces.annotation.queues import pair_id

        runs = self.runs(sorted({r for p in pairs for r in p}))
        items = [(pair_id(a, b) + f":{a}", self.request(runs[a], runs[b])) for a, b in pairs]
        res = self.llm.map(items)
        out = []
        for (a, b), (key, _) in zip(pairs, items, strict=True):
            r = res[key]
            out.append(PairVerdict(pair_id(a, b), a, b, r.value.choice if r.ok else "tie",
                                   r.value.reason.strip() if r.ok else "", None if r.ok else (r.error or "failed")))
        return out
