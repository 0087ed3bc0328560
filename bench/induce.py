"""Induction wall time for 1k, 10k and 50k aspects, beside BERTopic on the same aspects and embeddings.

Aspects come from demo runs' feedback, each run's details (amounts, tools,
order numbers) making them distinct texts. For each size: embedding time on a
cold cache and on a warm one, Libra's clustering (PCA + HDBSCAN + the
uncovered-aspect pass + merging) and naming, then BERTopic (UMAP + HDBSCAN +
c-TF-IDF) on the same embeddings. Held-out coverage and redundancy of both
clusterings go through the same naming, judge and matcher, at the sizes in
--coverage-sizes.

    pip install -e '.[bench]'    # BERTopic, for this benchmark only
    python bench/induce.py --sizes 1000 10000 50000 --coverage-sizes 1000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from traces.annotation.feedback import load as load_feedback  # noqa: E402
from autolibra.evaluation import OfflineMatcher  # noqa: E402
from autolibra.grounding import OfflineGrounder  # noqa: E402
from autolibra.locator import StepLocator  # noqa: E402
from autolibra.induce import InduceConfig, build_candidate, cluster_labels, ground_cached, split_by_run  # noqa: E402
from autolibra.naming import OfflineNamer  # noqa: E402
from metrics.embeddings import CachedEmbedder, SentenceTransformerEmbedder  # noqa: E402
from metrics.judges.trained import TrainedJudge  # noqa: E402
from libra.demo import build_demo  # noqa: E402
from traces.export import load_runs  # noqa: E402
from traces.store import Store  # noqa: E402


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def corpus(n_aspects: int, tmp: Path):
    store = Store(tmp / f"bench_{n_aspects}.duckdb")
    build_demo(store, n=max(60, int(n_aspects / 1.9)), seed=11)
    emb = CachedEmbedder(SentenceTransformerEmbedder(), store)
    fb = load_feedback(store)
    runs = load_runs(store, sorted({f.run_id for f in fb}))
    aspects, _ = ground_cached(store, fb, runs, OfflineGrounder(StepLocator(emb)))
    # demo phrasing repeats; tying each remark to its run's request makes the texts as varied as real ones
    from dataclasses import replace

    aspects = [replace(a, metadata={**a.metadata, "topic": f"{a.metadata.get('topic', a.behaviour)} "
                                                          f"(on: {(runs[a.run_id].task or '')[:70]})"})
               for a in aspects]
    return store, fb, runs, aspects[:n_aspects]


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
    ap.add_argument("--coverage-sizes", type=int, nargs="*", default=[1000])
    ap.add_argument("--min-cluster-size", type=int, default=8)
    args = ap.parse_args()
    cfg = InduceConfig(random_state=0)
    params = {"min_cluster_size": args.min_cluster_size, "merge_at": 0.65, "absorb_at": 0.5}
    rows = []
    rng = np.random.default_rng(0)  # UMAP's numba code compiles on first use; keep that out of the timings
    bertopic_labels([f"warm up {i}" for i in range(200)], rng.normal(size=(200, 384)).astype(np.float32), 5, 0)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            print(f"preparing {n:,} aspects …", file=sys.stderr, flush=True)
            store, fb, runs, aspects = corpus(n, Path(tmp))
            texts = [a.metadata.get("topic") or a.behaviour for a in aspects]
            store.execute("DELETE FROM embeddings")  # cold: nothing cached
            cold_emb = CachedEmbedder(SentenceTransformerEmbedder(), store)
            X, t_cold = timed(lambda e=cold_emb, t=texts: e.embed(t))  # noqa: N806
            warm = CachedEmbedder(SentenceTransformerEmbedder(), store)
            _, t_warm = timed(lambda e=warm, t=texts: e.embed(t))
            (labels, _), t_cluster = timed(lambda: cluster_labels(params, X, cfg))
            namer = OfflineNamer(embedder=warm)
            from autolibra.clustering import centroids
            cents = centroids(X, labels)

            def clusters_of(lab):
                out = {}
                for i, (a, c) in enumerate(zip(aspects, lab, strict=True)):
                    if c >= 0:
                        out.setdefault(int(c), []).append((a, float(X[i] @ cents.get(int(c), X[i]))))
                return out

            metrics, t_name = timed(lambda: namer.define(clusters_of(labels)))
            bt_labels, t_bt = timed(lambda: bertopic_labels(texts, X, args.min_cluster_size, 0))
            row = {"aspects": len(aspects), "unique": len(set(texts)), "embed_cold": t_cold, "embed_warm": t_warm,
                   "cluster": t_cluster, "name": t_name, "libra_total_warm": t_warm + t_cluster + t_name,
                   "bertopic": t_bt, "libra_metrics": len(metrics),
                   "bertopic_topics": len(set(bt_labels.tolist()) - {-1})}
            if n in args.coverage_sizes:
                train_fb, _ = split_by_run(fb, cfg.holdout, 0)
                ids = {f.feedback_id for f in train_fb}
                tr = [i for i, a in enumerate(aspects) if a.feedback_id in ids]
                held = [a for a in aspects if a.feedback_id not in ids]
                train = [aspects[i] for i in tr]
                Xt = X[tr]  # noqa: N806
                for name, lab in (("libra", cluster_labels(params, Xt, cfg)[0]),
                                  ("bertopic", bertopic_labels([texts[i] for i in tr], Xt,
                                                               args.min_cluster_size, 0))):
                    c = build_candidate(params, train, Xt, held, runs, cfg, namer, warm,
                                        lambda: TrainedJudge(warm), lambda: OfflineMatcher(warm), "bench",
                                        labels=lab)
                    row[f"{name}_coverage"] = c.heldout.coverage
                    row[f"{name}_redundancy"] = c.heldout.redundancy
            rows.append(row)
            print(f"  done {n:,}", file=sys.stderr, flush=True)
    print(f"{'aspects':>8}{'unique':>8}{'embed cold':>12}{'embed warm':>12}{'cluster':>9}{'name':>7}"
          f"{'Libra total (warm)':>20}{'BERTopic':>10}{'metrics/topics':>16}{'held-out cov/red Libra':>24}"
          f"{'BERTopic':>14}")
    for r in rows:
        cov = (f"{r['libra_coverage']:.3f}/{r['libra_redundancy']:.3f}" if "libra_coverage" in r else "-")
        bcov = (f"{r['bertopic_coverage']:.3f}/{r['bertopic_redundancy']:.3f}" if "bertopic_coverage" in r else "-")
        print(f"{r['aspects']:>8,}{r['unique']:>8,}{r['embed_cold']:>11.1f}s{r['embed_warm']:>11.1f}s"
              f"{r['cluster']:>8.1f}s{r['name']:>6.1f}s{r['libra_total_warm']:>19.1f}s{r['bertopic']:>9.1f}s"
              f"{str(r['libra_metrics']) + '/' + str(r['bertopic_topics']):>16}{cov:>24}{bcov:>14}")
    print("\nLibra total (warm) = embedding from the cache + clustering + naming; BERTopic is given the same "
          "embeddings. Goal: 10k aspects under 60 s warm, faster than BERTopic.")


if __name__ == "__main__":
    main()
