"""Pairwise preferences on Sotopia-π: people's agreement, the offline pairwise judge's, a baseline.

Sotopia-π's human evaluation has 14 scenarios each played by three models, and two
raters per episode who score it (goal completion, 0-10). Two episodes of one scenario by different models make
a pair; each rater slot (an episode's first and second rater, by id) gives a preference:
the episode it scored higher on goal completion, or a tie. People's agreement is
slot one against slot two on the same pairs, as `libra.preferences.agreement` computes it.

The offline pairwise judge (`MetricPairJudge`) prefers the episode an induced metric set
judged better. It is measured on scenarios it never saw: two folds grouped by scenario;
in each, the store keeps the notes of the training scenarios only, metrics are induced and
the offline judge fitted from them, the test scenarios' episodes are scored, and their pairs
judged. Beside it: a judge that always picks the left episode (reads nothing), and the
Bradley–Terry ranking of the three models from people's preferences.

    python bench/quality_prefs.py [--data ../shared/data/sotopia-pi-human-eval]
"""

from __future__ import annotations

import argparse
import itertools
import random
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import libra  # noqa: E402
from autolibra.induce import InduceConfig  # noqa: E402
from metrics import sets  # noqa: E402
from metrics.preferences import MetricPairJudge, PairVerdict, agreement, bradley_terry, judge_agreement  # noqa: E402
from traces.annotation.queues import pair_id  # noqa: E402
from traces.annotation import feedback  # noqa: E402
from traces.store import Store  # noqa: E402


def human_preferences(store: Store, seed: int = 0) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Each rater slot's preference on every same-scenario pair of episodes by different models."""
    runs = store.df("SELECT run_id, agent, task FROM runs")
    # a rater's goal-completion score for the episode (both agents' mean): the dimension Sotopia-π's two
    # raters agree on most (Spearman about 0.63), so the one people can be held to
    rated = store.df("SELECT run_id, author, avg(CAST(json_extract(metadata, '$.scores.goal') AS DOUBLE)) AS score "
                     "FROM feedback WHERE deleted_at IS NULL GROUP BY ALL HAVING score IS NOT NULL "
                     "ORDER BY run_id, author")
    slots = {r: list(g["score"])[:2] for r, g in rated.groupby("run_id")}
    pairs, rows = [], []
    rng = random.Random(seed)
    for _, g in runs.groupby("task"):
        for (a, aa), (b, ab) in itertools.combinations(zip(g["run_id"], g["agent"], strict=True), 2):
            if aa == ab or len(slots.get(a, [])) < 2 or len(slots.get(b, [])) < 2:
                continue
            if rng.random() < 0.5:  # sides shuffled, as a pairwise queue shows them: store order favours a model
                (a, aa), (b, ab) = (b, ab), (a, aa)
            pairs.append((a, b))
            for k in (0, 1):
                sa, sb = slots[a][k], slots[b][k]
                rows.append({"run_a": a, "run_b": b, "author": f"rater-{k + 1}", "agent_a": aa, "agent_b": ab,
                             "choice": "a" if sa > sb else "b" if sb > sa else "tie", "task": g["task"].iloc[0]})
    df = pd.DataFrame(rows)
    df["pair_id"] = [pair_id(a, b) for a, b in zip(df["run_a"], df["run_b"], strict=True)]
    df["created_at"] = pd.Timestamp("2026-01-01")
    return df, pairs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sotopia-pi-human-eval")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.duckdb"
        store = Store(base)
        libra.ingest(store, [args.data])
        prefs, pairs = human_preferences(store)
        people = agreement(prefs)
        print(f"{len(pairs)} same-scenario pairs of episodes by different models, {len(prefs)} preferences")
        print(f"people with each other: {people.rate:.3f} of {people.comparisons} person-pairs chose alike "
              f"(Krippendorff's alpha, nominal {people.alpha:.3f})")
        bt = bradley_terry(prefs, seed=0)
        print("Bradley–Terry from people: " + ", ".join(
            f"{r.item} {r.strength:+.2f} [{r.lo:+.2f}, {r.hi:+.2f}]" for r in bt.itertuples()))
        store.close()

        tasks = sorted(prefs["task"].unique())
        folds = [tasks[0::2], tasks[1::2]]
        judged: list[PairVerdict] = []
        net_judged: list[PairVerdict] = []
        prior: list[PairVerdict] = []
        all_prefs = []
        agent = dict(zip(prefs["run_a"], prefs["agent_a"], strict=True)) | dict(
            zip(prefs["run_b"], prefs["agent_b"], strict=True))
        for i, test_tasks in enumerate(folds):
            path = Path(tmp) / f"fold{i}.duckdb"
            shutil.copy(base, path)
            s = Store(path)
            test_runs = set(s.df("SELECT run_id FROM runs WHERE task IN (SELECT unnest(?::VARCHAR[]))",
                                 [list(test_tasks)])["run_id"])
            for note in feedback.load(s, sorted(test_runs)):  # the judge learns nothing from these scenarios
                feedback.delete(s, note.feedback_id, note.author)  # type: ignore[arg-type]  # loaded notes have both
            feedback.flush(s)
            res = libra.induce(s, backend="offline", config=InduceConfig(random_state=0), set_id="induced")
            sets.approve(s, "induced", res.metric_set.version, "bench")
            libra.score(s, set_id="induced", backend="offline")
            fold_pairs = [(a, b) for a, b in pairs if a in test_runs]
            judge = MetricPairJudge(s, "induced", res.metric_set.version)
            net_judged += judge.judge(fold_pairs)
            judged += judge.fit(prefs[~prefs["run_a"].isin(test_runs)]).judge(fold_pairs)
            # the strongest judge that reads no run: the model people preferred in the training scenarios
            strength = dict(bradley_terry(prefs[~prefs["run_a"].isin(test_runs)], resamples=0)[["item", "strength"]]
                            .itertuples(index=False))
            prior += [PairVerdict(pair_id(a, b), a, b, "a" if strength[agent[a]] >= strength[agent[b]] else "b")
                      for a, b in fold_pairs]
            all_prefs.append(prefs[prefs["run_a"].isin(test_runs)])
            print(f"fold {i + 1}: {len(test_tasks)} held-out scenarios, {len(fold_pairs)} pairs, "
                  f"{len(res.metric_set.metrics)} metrics induced from the other scenarios' notes")
            s.close()
        held = pd.concat(all_prefs)
        f = judge_agreement(held, judged)
        print(f"offline pairwise judge (induced metrics, fitted on the training scenarios' preferences, held-out "
              f"scenarios): agrees with people {f['judge_vs_people']:.3f} over {f['judge_comparisons']} labels; "
              f"people with each other {f['people_vs_people']:.3f}; always the left episode "
              f"{f['always_left_vs_people']:.3f}; {f['errors']} pairs without verdicts")
        n = judge_agreement(held, net_judged)
        print(f"the same metrics' net verdict, unfitted: {n['judge_vs_people']:.3f} over {n['judge_comparisons']} labels")
        b = judge_agreement(held, prior)
        print(f"reads no run, picks the model people preferred in the training scenarios: {b['judge_vs_people']:.3f} "
              f"over {b['judge_comparisons']} labels")
        # the judge abstains where the offline metrics cannot read the run; the baselines on the pairs it did judge
        on = held[held["pair_id"].isin({v.pair_id for v in judged if v.error is None})]
        o, ob = judge_agreement(on, judged), judge_agreement(on, prior)
        print(f"on the {o['pairs_judged']} pairs it judged: judge {o['judge_vs_people']:.3f}, people with each other "
              f"{o['people_vs_people']:.3f}, always the left episode {o['always_left_vs_people']:.3f}, the preferred "
              f"model {ob['judge_vs_people']:.3f}")


if __name__ == "__main__":
    main()
