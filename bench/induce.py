"""`libra induce` at 1k, 10k and 50k aspects, wall and CPU, beside BERTopic on the same embeddings.

Aspects come from demo runs' feedback, each remark tied to its run's request so
the texts are as varied as real ones (the demo's phrasing repeats). For each size,
with the embedding cache warm (every aspect and step embedded beforehand, as on a
store that has been scored): the whole offline induction `libra induce` runs
(clustering at each size of the granularity search, naming, fitting the judge,
judging and matching every candidate), timed by wall clock and by CPU seconds of
the process (torch's and BLAS's threads included). Beside it, in the same run:
BERTopic (UMAP + HDBSCAN + c-TF-IDF) given the same aspect embeddings, which only
clusters and names, and Libra's own clustering step on its own, the like-for-like
part. The last column says how the cost grew against n log n from the first size.

    pip install -e '.[bench]'    # BERTopic, for this benchmark only
    python bench/induce.py                       # 1k, 10k, 50k aspects
    python bench/induce.py --sizes 1000 10000
Goal: 10k aspects under 60 s warm; cost growing no worse than n log n.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autolibra.aspects import save_aspects  # noqa: E402
from autolibra.backends import induction_tools  # noqa: E402
from autolibra.induce import InduceConfig, base_labels, ground_cached, induce  # noqa: E402
from libra.demo import build_demo  # noqa: E402
from metrics.backends import choose_backend  # noqa: E402
from metrics.judges.base import step_text  # noqa: E402
from traces.annotation.feedback import load as load_feedback  # noqa: E402
from traces.export import load_runs  # noqa: E402
from traces.store import Store  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn):
    w, c = time.perf_counter(), cpu()
    out = fn()
    return out, time.perf_counter() - w, cpu() - c


def corpus(n_aspects: int, tmp: Path, tools):
    """A demo store with about `n_aspects` grounded aspects, their texts varied, every text embedded."""
    store = Store(tmp / f"bench_{n_aspects}.duckdb")
    build_demo(store, n=max(60, int(n_aspects / 1.9)), seed=11)
    fb = load_feedback(store)
    runs = load_runs(store, sorted({f.run_id for f in fb}))
    aspects, _ = ground_cached(store, fb, runs, tools.grounder)
    aspects = [replace(a, metadata={**a.metadata, "topic": f"{a.metadata.get('topic', a.behaviour)} "
                                                          f"(on: {(runs[a.run_id].task or '')[:70]})"})
               for a in aspects]
    save_aspects(store, aspects, tools.grounder.backend)
    # warm: what induction embeds (remarks, every step of the runs) is in the store's cache
    tools.embedder.embed([a.metadata["topic"] for a in aspects])
    tools.embedder.embed([step_text(s) for r in runs.values() for s in r.steps])
    return store, aspects


def bertopic_labels(texts, X, min_cluster_size: int, seed: int):  # noqa: N803
    from bertopic import BERTopic
    from hdbscan import HDBSCAN
    from umap import UMAP

    model = BERTopic(umap_model=UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine",
                                     random_state=seed),
                     hdbscan_model=HDBSCAN(min_cluster_size=min_cluster_size, prediction_data=True),
                     calculate_probabilities=False, verbose=False)
    topics, _ = model.fit_transform(list(texts), embeddings=X)
    return np.asarray(topics)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 50000])
    ap.add_argument("--min-cluster-size", type=int, default=8)
    args = ap.parse_args()
    cfg = InduceConfig(random_state=0)
    rows = []
    rng = np.random.default_rng(0)  # UMAP's numba code compiles on first use; keep that out of the timings
    bertopic_labels([f"warm up {i}" for i in range(200)], rng.normal(size=(200, 384)).astype(np.float32), 5, 0)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            print(f"preparing {n:,} aspects …", file=sys.stderr, flush=True)
            probe = Store(Path(tmp) / f"bench_{n}.duckdb")
            tools = induction_tools(choose_backend(probe, "offline"))
            store, aspects = corpus(n, Path(tmp), tools)
            tools = induction_tools(choose_backend(store, "offline"))  # a fresh process's tools: cache in the store
            print(f"inducing from {len(aspects):,} aspects …", file=sys.stderr, flush=True)
            res, wall, cpu_s = timed(lambda s=store, t=tools: induce(
                s, grounder=t.grounder, namer=t.namer, embedder=t.embedder, judge_factory=t.judge_factory,
                matcher_factory=t.matcher_factory, config=cfg, save=False,
                progress=lambda stage, d, tot: None))
            texts = [a.metadata.get("topic") or a.behaviour for a in res.train_aspects]
            X = res.vectors  # noqa: N806 - the embeddings induction clustered
            _, c_wall, c_cpu = timed(lambda x=X: base_labels(args.min_cluster_size, x, cfg))
            bt, b_wall, b_cpu = timed(lambda t=texts, x=X: bertopic_labels(t, x, args.min_cluster_size, 0))
            s = res.summary()
            rows.append({"n": len(aspects), "train": len(res.train_aspects), "wall": wall, "cpu": cpu_s,
                         "cluster_wall": c_wall, "cluster_cpu": c_cpu, "bt_wall": b_wall, "bt_cpu": b_cpu,
                         "metrics": s["metrics"], "topics": len(set(bt.tolist()) - {-1}),
                         "candidates": len(res.candidates),
                         "sampled": res.metric_set.provenance.get("search_sample") if res.metric_set.provenance
                         else None, "cov": s["heldout"]["coverage"], "red": s["heldout"]["redundancy"]})
            store.close()
            print(f"  done {n:,}: {wall:.1f} s wall, {cpu_s:.1f} CPU-s", file=sys.stderr, flush=True)
    first = rows[0]
    nlogn = lambda m: m * math.log(m)  # noqa: E731
    print(f"{'aspects':>8}{'induction':>10}{'libra induce':>24}{'Libra clustering':>22}{'BERTopic':>22}"
          f"{'metrics/topics':>16}{'held-out cov/red':>18}{'CPU growth / n log n':>22}")
    print(f"{'':>8}{'part':>10}{'wall s':>12}{'CPU s':>12}{'wall s':>11}{'CPU s':>11}{'wall s':>11}{'CPU s':>11}")
    for r in rows:
        growth = (r["cpu"] / first["cpu"]) / (nlogn(r["train"]) / nlogn(first["train"]))
        print(f"{r['n']:>8,}{r['train']:>10,}{r['wall']:>12.1f}{r['cpu']:>12.1f}{r['cluster_wall']:>11.1f}"
              f"{r['cluster_cpu']:>11.1f}{r['bt_wall']:>11.1f}{r['bt_cpu']:>11.1f}"
              f"{str(r['metrics']) + '/' + str(r['topics']):>16}{r['cov']:>10.3f}/{r['red']:.3f}{growth:>19.2f}")
    print(f"\n`libra induce` = the whole offline induction ({rows[-1]['candidates']} candidates searched; above "
          f"{cfg.search_aspects:,} induction aspects each is judged on a sample of runs, the chosen one on all). "
          "BERTopic and Libra's clustering get the same embeddings; BERTopic only clusters and names. "
          "CPU growth / n log n ≤ 1 means the cost grows no faster than n log n. "
          "Goal: 10k aspects under 60 s warm.")


if __name__ == "__main__":
    main()
