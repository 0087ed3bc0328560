"""Scoring proactive agents' event streams with a reward model.

`ProactivityJudge` follows the `Judge` interface: for each stored stream
run, every decision point (a proposal or a silence) is a unit, counted as
ProactiveBench counts it (TP, FP, TN, FN), and the run-level verdict carries
the share of good decisions. `agent_report` turns the stored units back
into per-agent precision, recall, F1 and false-alarm rate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from metrics.definitions import Metric, MetricSet
from metrics.judges.base import Judgement, RunView, Verdict
from pipa.proactive.data import decision_points
from pipa.proactive.evaluate import prf
from traces.store import Store

METRIC_ID = "proactivity"


def proactivity_set(model_id: str) -> MetricSet:
    m = Metric(METRIC_ID, "Proactivity",
               "Each decision along the event stream: a proposal people would accept (TP) or reject (FP), "
               "a silence that was right (TN) or where the user needed help (FN), as a reward model judges it.",
               scope="decision", kind="proactivity", metadata={"reward_model": model_id})
    return MetricSet(f"proactivity-{model_id.replace('@', '-')}", 1, f"Proactivity ({model_id})", (m,),
                     status="approved", provenance={"kind": "proactivity", "reward_model": model_id})


class ProactivityJudge:
    backend = "reward-model"

    def __init__(self, model, model_id: str):
        self.model = model
        self.version = model_id

    def judge(self, runs: Sequence[RunView], metric_set: MetricSet,
              progress: Callable[[int, int], None] | None = None) -> list[Judgement]:
        points = [decision_points(v.steps) for v in runs]
        flat = [p for ps in points for p, _ in ps]
        ok = list(self.model.predict(flat)) if flat else []
        out, k = [], 0
        for v, ps in zip(runs, points, strict=True):
            units = []
            for p, step in ps:
                accept = bool(ok[k])
                k += 1
                code = ("TP" if accept else "FP") if not p.silent else ("TN" if accept else "FN")
                units.append((step, 1 if code in ("TP", "TN") else -1, code))
            if not units:
                out.append(Judgement(v.run_id, (Verdict(METRIC_ID, 0, (), "no proposals or silences in this run"),)))
                continue
            good = sum(1 for _, val, _ in units if val > 0)
            counts = {c: sum(1 for *_, x in units if x == c) for c in ("TP", "FP", "TN", "FN")}
            out.append(Judgement(v.run_id, (Verdict(
                METRIC_ID, 1 if good * 2 >= len(units) else -1, tuple(s for s, val, _ in units if val < 0)[:20],
                " ".join(f"{c}={n}" for c, n in counts.items()), rate=good / len(units), units=tuple(units)),)))
            if progress:
                progress(len(out), len(runs))
        return out


def score_streams(store: Store, model, *, agent: str | None = None,
                  progress: Callable[[int, int], None] | None = None):
    """Score stored event streams with a saved reward model under its own (stored) metric set."""
    from metrics import sets
    from metrics.scoring import score_runs

    ms = proactivity_set(model.model_id_)
    try:
        ms = sets.load(store, ms.set_id)
    except KeyError:
        ms = sets.save(store, ms, backend="reward-model", created_by="libra", approved_by="libra")
    return ms, score_runs(store, ms, ProactivityJudge(model, model.model_id_), run_ids=stream_runs(store, agent),
                          progress=progress)


def stream_runs(store: Store, agent: str | None = None) -> list[str]:
    """Stored proactive agents' event streams (unlabelled runs with proposals or silences)."""
    return [r for r, in store.execute(
        "SELECT DISTINCT s.run_id FROM steps s JOIN runs r USING (run_id) WHERE s.kind = 'agent_message' "
        "AND (json_exists(s.metadata, '$.proposal') OR json_exists(s.metadata, '$.silent')) "
        "AND r.format = 'proactivebench' AND (r.gold IS NULL OR json_extract(r.gold, '$.valid') IS NULL) "
        "AND (?::VARCHAR IS NULL OR r.agent = ?) ORDER BY 1", [agent, agent])]


def agent_report(store: Store, set_id: str) -> pd.DataFrame:
    """Per agent: TP/FP/TN/FN over its decisions and ProactiveBench's measures (false alarm = 1 - precision)."""
    df = store.df(
        "SELECT coalesce(r.agent, r.model, r.format) AS agent, "
        "sum((u.reason = 'TP')::INT) AS tp, sum((u.reason = 'FP')::INT) AS fp, "
        "sum((u.reason = 'TN')::INT) AS tn, sum((u.reason = 'FN')::INT) AS fn, count(DISTINCT u.run_id) AS runs "
        "FROM score_units u JOIN runs r USING (run_id) WHERE u.metric_set_id = ? AND u.metric_id = ? "
        "GROUP BY ALL ORDER BY agent", [set_id, METRIC_ID])
    rows = []
    for r in df.itertuples(index=False):
        m = prf(r.tp, r.fp, r.fn, r.tn)
        rows.append({"agent": r.agent, "runs": int(r.runs), "tp": int(r.tp), "fp": int(r.fp), "tn": int(r.tn),
                     "fn": int(r.fn), **m,
                     "false_alarm": 1 - m["precision"] if m["precision"] == m["precision"] else float("nan")})
    return pd.DataFrame(rows)
