"""Metric induction quality on Sotopia-π human evaluations, offline (no API key).

Each rater's written reasons about one agent are feedback on that agent's
side of the dialogue. Induce on part of the episodes, evaluate on the rest:
held-out coverage and redundancy, which of the seven expert dimensions the
induced metrics recover, and how the judge's graded verdicts rank agents
against people's scores on the matching dimension, beside how the two human
raters agree with each other.

    python bench/quality_sotopia.py [--data ../shared/data/sotopia-pi-human-eval] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import normalized_mutual_info_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autolibra.evaluation import OfflineMatcher, label_recovery  # noqa: E402
from autolibra.grounding import OfflineGrounder  # noqa: E402
from autolibra.locator import StepLocator  # noqa: E402
from autolibra.induce import InduceConfig, _views, choose_candidate, induce  # noqa: E402
from autolibra.naming import OfflineNamer  # noqa: E402
from metrics.embeddings import default_embedder  # noqa: E402
from metrics.judges.trained import TrainedJudge  # noqa: E402
from traces.export import load_runs  # noqa: E402
from traces.ingest import ingest  # noqa: E402
from traces.store import Store  # noqa: E402

AUTOLIBRA_REDUNDANCY = 0.85  # where AutoLibra's own Sotopia sets sit
DIMS = ("believability", "relationship", "knowledge", "secret", "social_rules",
        "financial_and_material_benefits", "goal")


# The seven dimensions as Sotopia's evaluation describes them (paraphrased), for judging names.
EXPERT = {
    "believability": "Believability: the agent behaves naturally, realistically and consistently with its character.",
    "relationship": "Relationship: the agent preserves or improves its relationship with the other person.",
    "knowledge": "Knowledge: the agent gains new and important information through the interaction.",
    "secret": "Secret: the agent keeps its secrets and private intentions from being revealed.",
    "social_rules": "Social rules: the agent follows social norms and laws, and avoids lying, threats or harm.",
    "financial_and_material_benefits": "Financial and material benefits: the agent gains money, goods or "
                                       "other material benefits, or avoids losing them.",
    "goal": "Goal: the agent achieves the social goal it was given in the scenario.",
}


def name_figures(metric_set, recovered: dict, emb) -> dict:
    """How well names and definitions say what a metric is about, and how many say the same thing.

    For each metric that recovers an expert dimension: is that dimension's
    description the nearest of the seven to the metric's name (and to its name
    and definition)? Duplicates: pairs of metrics whose names are the same
    words, or whose name and definition are nearly the same text (cosine >= 0.9).
    """
    dims = list(EXPERT)
    D = emb.embed([EXPERT[d] for d in dims])  # noqa: N806
    by_id = {m.metric_id: m for m in metric_set.metrics}
    name_hits = def_hits = 0
    for d, info in recovered.items():
        m = by_id[info["metric_id"]]
        v = emb.embed([m.name, f"{m.name}: {m.explanation}"])
        name_hits += dims[int(np.argmax(D @ v[0]))] == d
        def_hits += dims[int(np.argmax(D @ v[1]))] == d
    ms = list(metric_set.metrics)
    words = [frozenset(re.findall(r"[a-z]+", m.name.lower())) for m in ms]
    V = emb.embed([f"{m.name}: {m.explanation}" for m in ms])  # noqa: N806
    same_words = sum(words[i] == words[j] for i in range(len(ms)) for j in range(i + 1, len(ms)))
    near = sum(float(V[i] @ V[j]) >= 0.9 for i in range(len(ms)) for j in range(i + 1, len(ms)))
    return {"recovered": len(recovered), "name_points_to_dimension": name_hits,
            "definition_points_to_dimension": def_hits, "same_name_pairs": same_words, "near_duplicate_pairs": near,
            "scenario_specific": sum(bool(m.metadata.get("scenario_specific")) for m in ms)}


def _dimension(a) -> str | None:
    return (a.metadata.get("label") or {}).get("dimension")


def outside_coverage(train, held, metric_set, emb) -> dict:
    """Coverage of held-out remarks as an outside reviewer would measure it, induced set against the experts.

    Not Libra's matcher or judge: each remark is matched to the nearest metric
    by embedding its text against the metric's name and definition (the seven
    expert descriptions for the expert set), and counts as covered when that
    similarity reaches a threshold calibrated on the expert descriptions alone:
    the one that best tells a remark's own dimension from the six others
    (balanced accuracy), on the induction part's remarks.
    """
    dims = list(EXPERT)
    E = emb.embed([EXPERT[d] for d in dims])  # noqa: N806
    labelled = [a for a in train if _dimension(a) in EXPERT]
    S = emb.embed([a.text() for a in labelled]) @ E.T  # noqa: N806
    own = np.array([S[i, dims.index(_dimension(a))] for i, a in enumerate(labelled)])
    other = np.concatenate([np.delete(S[i], dims.index(_dimension(a))) for i, a in enumerate(labelled)])
    grid = np.linspace(0.1, 0.8, 71)
    threshold = float(grid[np.argmax([(own >= t).mean() + (other < t).mean() for t in grid])])
    H = emb.embed([a.text() for a in held])  # noqa: N806
    M = emb.embed([f"{m.name}: {m.explanation}" for m in metric_set.metrics])  # noqa: N806
    covered_induced = (H @ M.T).max(axis=1) >= threshold
    covered_expert = (H @ E.T).max(axis=1) >= threshold
    per = {}
    for d in dims:
        idx = [i for i, a in enumerate(held) if _dimension(a) == d]
        if idx:
            per[d] = (float(covered_induced[idx].mean()), float(covered_expert[idx].mean()), len(idx))
    return {"threshold": threshold, "induced": float(covered_induced.mean()), "expert": float(covered_expert.mean()),
            "per_dimension": per}


def own_expert_coverage(ind, store, emb, runs) -> dict:
    """Libra's own measure (its judge and matcher) on the expert partition: the seven dimensions as clusters.

    With the same facet split as the chosen induced set (praised and criticised sides of a
    dimension as two metrics), so the experts are not held back by one verdict per mixed topic.
    """
    from autolibra.induce import InduceConfig, build_candidate

    train = ind.train_aspects
    dims = list(EXPERT)
    labels = np.array([dims.index(_dimension(a)) if _dimension(a) in EXPERT else -1 for a in train])
    c = build_candidate({"min_cluster_size": 12, "split_mixed": bool(ind.chosen.params.get("split_mixed"))}, train, ind.vectors, ind.heldout_aspects, runs, InduceConfig(),
                        OfflineNamer(embedder=emb), emb, lambda: TrainedJudge(emb), lambda: OfflineMatcher(emb),
                        "expert", labels=labels)
    return {"heldout": c.heldout.row(), "train": c.train.row()}


def keyword_named(metric_set):
    """The same metrics named as before keyphrases: the cluster's top two c-TF-IDF keywords, one template."""
    from dataclasses import replace

    out = []
    for m in metric_set.metrics:
        kw = m.metadata.get("keywords") or [m.name]
        out.append(replace(m, name=", ".join(kw[:2]).capitalize(),
                           explanation=f"How the agent does on what people raised about {', '.join(kw[:4])}."))
    return metric_set.with_metrics(out)


def human_scores(store: Store) -> dict[tuple[str, str], dict[str, list[float]]]:
    """(run id, agent) -> dimension -> each rater's score."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for run_id, gold in store.execute("SELECT run_id, gold FROM runs WHERE format = 'sotopia'"):
        for r in json.loads(gold)["human_ratings"]:
            for d, v in r["scores"].items():
                if v is not None:
                    out[(run_id, r["agent"])][d].append(v)
    return out


def human_agreement(scores) -> dict[str, float]:
    out = {}
    for d in DIMS:
        pairs = [(v[d][0], v[d][1]) for v in scores.values() if len(v.get(d, [])) >= 2]
        if len(pairs) > 5:
            out[d] = float(spearmanr(*zip(*pairs, strict=True)).statistic)
    return out


def ceilings(ind, emb, c=None) -> dict:
    """Where held-out coverage is lost, and how far a better judge could take it.

    - oracle: each (agent, metric) gets the sign most of its held-out remarks have
      (a judge that knew what people would say);
    - majority: each metric's most common sign in the induction part, on every agent
      (a judge that reads nothing of the run);
    - raters: how often the two raters of an agent give a dimension the same sign.
    """
    from collections import Counter

    from autolibra.evaluation import OfflineMatcher, Trait, meta_evaluate
    from metrics.judges.trained import view_key

    c, held = c or ind.chosen, ind.heldout_aspects
    by_cluster = {m.metadata["cluster"]: m.metric_id for m in c.metric_set.metrics}
    metric_of = [by_cluster.get(int(lab)) for lab in c.labels]
    matcher = OfflineMatcher(emb).fit(ind.train_aspects, metric_of, c.metric_set)
    S, ids = matcher.similarities(held, c.metric_set)  # noqa: N806
    votes: dict = {}
    for i, a in enumerate(held):
        for j, mid in enumerate(ids):
            if S[i, j] >= matcher.threshold_:
                votes.setdefault((view_key(a.run_id, a.focus), mid), Counter())[a.sign] += 1
    oracle = [Trait(v, m, cnt.most_common(1)[0][0]) for (v, m), cnt in votes.items()]
    signs: dict = {}
    for a, m in zip(ind.train_aspects, metric_of, strict=True):
        if m:
            signs.setdefault(m, Counter())[a.sign] += 1
    views = {view_key(a.run_id, a.focus) for a in held}
    majority = [Trait(v, m, cnt.most_common(1)[0][0]) for v in views for m, cnt in signs.items()]
    by_rater: dict = {}
    for a in ind.train_aspects + held:
        d = (a.metadata.get("label") or {}).get("dimension")
        if d:
            by_rater.setdefault((a.run_id, a.focus, d), {})[a.metadata.get("author") or a.feedback_id] = a.sign
    pairs = [list(v.values())[:2] for v in by_rater.values() if len(v) >= 2]
    out = {name: meta_evaluate(held, traits, matcher.match(held, traits, c.metric_set)).row()
           for name, traits in (("oracle", oracle), ("majority", majority))}
    out["raters_same_sign"] = float(np.mean([a == b for a, b in pairs])) if pairs else float("nan")
    return out


def run(data: Path, seed: int, store: Store, emb) -> dict:
    cfg = InduceConfig(holdout=0.5, random_state=seed)
    judge = lambda: TrainedJudge(emb)  # noqa: E731
    ind = induce(store, grounder=OfflineGrounder(StepLocator(emb)), namer=OfflineNamer(embedder=emb),
                 embedder=emb, judge_factory=judge, config=cfg, save=False)
    c = ind.chosen
    gold = np.array([(a.metadata.get("label") or {}).get("dimension") or "none" for a in ind.train_aspects])
    mask = c.labels >= 0
    recovered = label_recovery(ind.train_aspects, c.labels, c.metric_set, "dimension")
    # judge vs people on held-out agents, for the dimensions a metric recovered
    runs = load_runs(store, sorted({a.run_id for a in ind.train_aspects + ind.heldout_aspects}))
    from autolibra.induce import evidence_of, labels_of
    by_cluster = {m.metadata["cluster"]: m.metric_id for m in c.metric_set.metrics}
    metric_of = [by_cluster.get(int(lab)) for lab in c.labels]
    from autolibra.backends import fit_graded_judge
    from traces.annotation import feedback as notes

    signs_judge = TrainedJudge(emb).fit(_views(ind.train_aspects, runs), c.metric_set,
                                        labels_of(ind.train_aspects, metric_of, c.metric_set),
                                        evidence=evidence_of(ind.train_aspects, metric_of, c.metric_set))
    train_runs = {a.run_id for a in ind.train_aspects}
    j = fit_graded_judge(ind.train_aspects, metric_of, [n for n in notes.load(store) if n.run_id in train_runs],
                         runs, c.metric_set, signs_judge)
    held_views = _views(ind.heldout_aspects, runs)
    margins = j.margins(held_views, c.metric_set)
    verdicts = j.judge(held_views, c.metric_set)
    values: dict = defaultdict(set)
    for jg in verdicts:
        for v in jg.verdicts:
            values[v.metric_id].add(v.value)
    graded = {m.name: {"learns": j.score_keys_[m.metric_id], "cv": j.agreement_.get(m.metric_id)}
              for m in c.metric_set.metrics if m.metric_id in j.models_}
    needs_llm = {m.name: j.needs_llm_[m.metric_id] for m in c.metric_set.metrics if m.metric_id in j.needs_llm_}
    constant = [m.name for m in c.metric_set.metrics if len(values.get(m.metric_id, set())) == 1]
    scores = human_scores(store)
    ids = [m.metric_id for m in c.metric_set.metrics]
    judge_vs_people = {}
    for d, info in recovered.items():
        xs, ys = [], []
        for v, row in zip(held_views, margins, strict=True):
            people = scores.get((v.run_id, v.focus), {}).get(d)
            if people:
                xs.append(row[ids.index(info["metric_id"])])
                ys.append(float(np.mean(people)))
        if len(xs) > 5 and np.std(xs) > 0:
            judge_vs_people[d] = float(spearmanr(xs, ys).statistic)
    matched = choose_candidate(ind.candidates, max_redundancy=AUTOLIBRA_REDUNDANCY)
    return {
        "seed": seed, "metrics": len(c.metric_set.metrics), "params": c.params,
        "matched": {"params": matched.params, "metrics": len(matched.metric_set.metrics),
                    "train": matched.train.row(), "heldout": matched.heldout.row(),
                    "ceilings": ceilings(ind, emb, matched)},
        "train": c.train.row(), "heldout": c.heldout.row(),
        "nmi_clustered": float(normalized_mutual_info_score(gold[mask], c.labels[mask])),
        "nmi_all": float(normalized_mutual_info_score(gold, c.labels)),
        "recovered": recovered, "judge_vs_people": judge_vs_people,
        "human_vs_human": human_agreement(scores), "frontier": ind.frontier(),
        "names": [m.name for m in c.metric_set.metrics], "ceilings": ceilings(ind, emb),
        "graded": graded, "needs_llm": needs_llm, "constant": constant,
        "naming": name_figures(c.metric_set, recovered, emb),
        "naming_keywords": name_figures(keyword_named(c.metric_set), recovered, emb),
        "outside": outside_coverage(ind.train_aspects, ind.heldout_aspects, c.metric_set, emb),
        "own_expert": own_expert_coverage(ind, store, emb, runs),
    }


def dimension_judges(store: Store, emb, seeds=(0, 1, 2)) -> dict[str, dict[str, float]]:
    """The offline judge learning each expert dimension from people's scores, against its baselines.

    Per dimension: Spearman of the judge's out-of-fold predictions with the mean
    of people's scores (5 folds grouped by scenario, mean over `seeds`); the
    judge that reads nothing (one verdict for every agent: no ranking, 0); and
    the two raters of an agent with each other.
    """
    from metrics.judges.base import RunView
    from metrics.judges.graded import cross_validated, sides

    runs = load_runs(store, [r for r, in store.execute("SELECT run_id FROM runs WHERE format = 'sotopia'")])
    scores = human_scores(store)
    views = [RunView(r, runs[r].steps, runs[r].task, a) for (r, a) in sorted(scores) if r in runs]
    own, other = map(list, zip(*(sides(v) for v in views), strict=True))
    groups = [v.task or v.run_id for v in views]
    people = human_agreement(scores)
    out = {}
    for d in DIMS:
        y = np.array([np.mean(scores[(v.run_id, v.focus)].get(d) or [np.nan]) for v in views])
        ok = ~np.isnan(y)
        rhos = []
        for seed in seeds:
            pred = cross_validated([own[i] for i in np.where(ok)[0]], [other[i] for i in np.where(ok)[0]],
                                   y[ok], [groups[i] for i in np.where(ok)[0]], seed=seed)
            rhos.append(float(spearmanr(pred, y[ok]).statistic))
        out[d] = {"judge": float(np.mean(rhos)), "judge_sd": float(np.std(rhos)), "reads_nothing": 0.0,
                  "people": people.get(d, float("nan")), "agents": int(ok.sum())}
    return out


def sign_figures(store: Store) -> dict:
    """The sign classifier against the word list and the trivial baseline, grouped by scenario."""
    from autolibra.sign_model import SignedRemark, cross_validated, signed_remarks
    from traces.annotation import feedback as notes

    scenario = dict(store.execute("SELECT run_id, coalesce(task, run_id) FROM runs"))
    remarks = [SignedRemark(r.text, r.sign, scenario.get(r.group, r.group)) for r in signed_remarks(notes.load(store))]
    return cross_validated(remarks, folds=5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sotopia-pi-human-eval")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "sotopia.duckdb")
        ingest(store, [args.data])
        emb = default_embedder(store)
        results = [run(args.data, s, store, emb) for s in args.seeds]
        signs = sign_figures(store)
        dims = dimension_judges(store, emb)
    print("offline judge learning each dimension from people's scores (what the agent said, what it was told; "
          "TF-IDF + ridge), Spearman with people's mean score, 5 folds grouped by scenario, mean of 3 fold seeds:")
    print(f"   {'dimension':<34} {'judge':>12} {'reads nothing':>14} {'people vs people':>17}")
    for d, f in dims.items():
        print(f"   {d:<34} {f['judge']:+.2f} ± {f['judge_sd']:.2f} {f['reads_nothing']:>+14.2f} {f['people']:>+17.2f}")
    print(f"sign of a remark, {int(signs['remarks'])} remarks scored by people, 5 folds grouped by scenario: "
          f"classifier {signs['classifier']:.3f}, the word list it replaces {signs['lexicon']:.3f}, "
          f"always the commoner sign {signs['majority']:.3f}; criticism found: classifier "
          f"{signs['classifier_criticism_recall']:.3f}, word list {signs['lexicon_criticism_recall']:.3f}")
    for r in results:
        print(f"\n== split seed {r['seed']}: {r['metrics']} metrics, params {r['params']}")
        print("   " + "; ".join(r["names"]))
        print(f"   train    coverage {r['train']['coverage']:.3f}  redundancy {r['train']['redundancy']:.3f}  "
              f"(N/A counted: {r['train']['redundancy_all']:.3f})")
        print(f"   held-out coverage {r['heldout']['coverage']:.3f}  redundancy {r['heldout']['redundancy']:.3f}  "
              f"(N/A counted: {r['heldout']['redundancy_all']:.3f})")
        mt = r["matched"]
        print(f"   at AutoLibra's redundancy (best induction-part coverage with redundancy <= {AUTOLIBRA_REDUNDANCY}): "
              f"{mt['metrics']} metrics, {mt['params']}: held-out coverage {mt['heldout']['coverage']:.3f}  "
              f"redundancy {mt['heldout']['redundancy']:.3f}")
        print(f"   NMI with the 7 dimensions: {r['nmi_clustered']:.3f} (clustered aspects), {r['nmi_all']:.3f} (all)")
        print(f"   dimensions recovered: {len(r['recovered'])}/7: " + ", ".join(
            f"{d} by '{v['metric']}' (p {v['precision']}, r {v['recall']})" for d, v in sorted(r["recovered"].items())))
        for label, ce in (("balanced", r["ceilings"]), ("at AutoLibra's redundancy", mt["ceilings"])):
            print(f"   {label}, other judges on the same metrics (held-out coverage / redundancy): with signs "
                  f"people gave (a judge that knew) {ce['oracle']['coverage']:.3f} / {ce['oracle']['redundancy']:.3f}; "
                  f"each metric's usual sign on every agent (a judge that reads nothing) "
                  f"{ce['majority']['coverage']:.3f} / {ce['majority']['redundancy']:.3f}")
        print(f"   the two raters of an agent give a dimension the same sign {r['ceilings']['raters_same_sign']:.2f} "
              f"of the time")
        print("   Spearman, judge vs people | people vs people, per recovered dimension:")
        for d in sorted(r["recovered"]):
            jv = r["judge_vs_people"].get(d)
            print(f"     {d:<34} {'n/a' if jv is None else f'{jv:+.2f}':>6} | {r['human_vs_human'].get(d, float('nan')):+.2f}")
        nf = r["naming"]
        print(f"   names: of {nf['recovered']} metrics that recover a dimension, the nearest expert description is "
              f"that dimension's for {nf['name_points_to_dimension']} names and {nf['definition_points_to_dimension']} "
              f"name+definitions; duplicates: {nf['same_name_pairs']} pairs with the same name words, "
              f"{nf['near_duplicate_pairs']} near-identical; {nf['scenario_specific']} flagged as about one scenario")
        oc = r["outside"]
        print(f"   coverage of held-out remarks, outside matcher (nearest metric by name and definition, threshold "
              f"{oc['threshold']:.2f} calibrated on the expert descriptions): induced {oc['induced']:.3f}, "
              f"the 7 expert dimensions {oc['expert']:.3f}; per dimension (induced / experts, remarks):")
        for d, (ci, ce, n) in oc["per_dimension"].items():
            print(f"     {d:<34} {ci:.3f} / {ce:.3f}  ({n})")
        oe = r["own_expert"]["heldout"]
        print(f"   coverage, Libra's own judge and matcher: induced {r['heldout']['coverage']:.3f} (redundancy "
              f"{r['heldout']['redundancy']:.3f}), the 7 expert dimensions as its metrics {oe['coverage']:.3f} "
              f"(redundancy {oe['redundancy']:.3f})")
        kf = r["naming_keywords"]
        print(f"   the same metrics named by keyword pairs and one template (before): {kf['name_points_to_dimension']} "
              f"names and {kf['definition_points_to_dimension']} name+definitions point to their dimension; "
              f"{kf['same_name_pairs']} same-name pairs, {kf['near_duplicate_pairs']} near-identical")
        print(f"   offline judge: {len(r['graded'])} metrics learnt from people's scores: " + "; ".join(
            f"{n} ({g['learns']}, cross-validated by scenario {g['cv']:+.2f})" for n, g in r["graded"].items()))
        print(f"   needs an LLM judge ({len(r['needs_llm'])}): " + ("; ".join(
            f"{n}: {why}" for n, why in r["needs_llm"].items()) or "none"))
        print(f"   metrics with one verdict for every held-out agent: {len(r['constant'])}"
              + (f" ({'; '.join(r['constant'])})" if r["constant"] else ""))
    cov = [r["heldout"]["coverage"] for r in results]
    red = [r["heldout"]["redundancy"] for r in results]
    print(f"\nheld-out over {len(results)} splits: coverage {np.mean(cov):.3f} ± {np.std(cov):.3f}, "
          f"redundancy {np.mean(red):.3f} ± {np.std(red):.3f}; "
          f"dimensions recovered {np.mean([len(r['recovered']) for r in results]):.1f}/7")
    mcov = [r["matched"]["heldout"]["coverage"] for r in results]
    mred = [r["matched"]["heldout"]["redundancy"] for r in results]
    print(f"chosen at AutoLibra's redundancy: held-out coverage {np.mean(mcov):.3f} ± {np.std(mcov):.3f}, "
          f"redundancy {np.mean(mred):.3f} ± {np.std(mred):.3f}")
    print("reference (AutoLibra, GPT-4o / o3-mini): coverage 0.54-0.58 at redundancy 0.85-0.86")
    print("\nfrontier of the first split (every candidate, train and held-out):")
    print(results[0]["frontier"][["min_cluster_size", "merge_at", "absorb_at", "split_mixed", "split", "metrics",
                                  "coverage", "redundancy", "chosen"]].to_string(index=False))


if __name__ == "__main__":
    main()
