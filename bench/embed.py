"""Embedding throughput against the model's own speed (issue 21 §4).

Texts: people's remarks and trace steps from ../shared/data (Sotopia ratings' reasons, Who&When and
τ-bench steps), cut to what Libra embeds, shuffled so lengths are mixed as they are in a store. Timed
on the same texts, same warm model, same run:

- reference: one raw `SentenceTransformer.encode(texts, batch_size=64)` call (the library sorts the
  whole input by length itself: the strongest fair peer, and the model's speed);
- before: what Libra did until this change, `encode` on 64-text chunks in input order;
- Libra: `SentenceTransformerEmbedder.embed` (whole-input length sort, token-budget batches);
- warm: the same texts again through the store's cache (`CachedEmbedder`), counting recomputations.

    python bench/embed.py              # up to 6,000 texts
    python bench/embed.py --texts 2000
Goal: Libra's items/s at least 0.95 of the raw call's, and 0 texts recomputed warm.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from metrics.embeddings import CachedEmbedder, SentenceTransformerEmbedder  # noqa: E402
from traces.ingest import ingest  # noqa: E402
from traces.store import Store  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def corpus(limit: int, seed: int = 0) -> list[str]:
    store = Store(":memory:")
    ingest(store, [SHARED / d for d in ("sotopia-pi-human-eval", "who-and-when", "tau-bench")])
    texts = [t for t, in store.execute("SELECT text FROM feedback")]
    texts += [t[:2000] for t, in store.execute("SELECT content FROM steps WHERE length(content) > 0")]
    texts = list(dict.fromkeys(texts))
    random.Random(seed).shuffle(texts)
    return texts[:limit]


def timed(fn) -> tuple[float, float, object]:
    c, t = cpu(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t, cpu() - c, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--texts", type=int, default=6000)
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"needs {SHARED}")
    texts = corpus(args.texts)
    emb = SentenceTransformerEmbedder()
    model = emb._model()
    model.encode(texts[:64], batch_size=64)  # warm: weights paged in, threads up
    chars = sum(map(len, texts))
    print(f"{len(texts):,} texts, {chars / len(texts):,.0f} characters on average, model {emb.name}")

    def chunked() -> np.ndarray:
        return np.vstack([model.encode(texts[i:i + 64], batch_size=64, normalize_embeddings=True)
                          for i in range(0, len(texts), 64)])

    rows = [("reference: one raw encode() call", lambda: model.encode(texts, batch_size=64,
                                                                      normalize_embeddings=True)),
            ("before: encode() on 64-text chunks in input order", chunked),
            ("Libra: SentenceTransformerEmbedder.embed", lambda: emb.embed(texts))]
    results = {}
    for name, fn in rows:
        wall, cpu_s, vecs = timed(fn)
        results[name] = (wall, cpu_s, vecs)
        print(f"  {name:<52} {len(texts) / wall:8.1f} items/s  wall {wall:6.1f} s  cpu {cpu_s:6.1f} s")
    ref, libra = results[rows[0][0]], results[rows[2][0]]
    same = float(np.abs(np.asarray(ref[2]) - libra[2]).max())
    print(f"Libra / raw encode: {ref[0] / libra[0]:.2f} by wall, {ref[1] / libra[1]:.2f} by CPU "
          f"(goal >= 0.95); largest difference between their vectors {same:.1e}")
    with tempfile.TemporaryDirectory() as d:
        store = Store(str(Path(d) / "e.duckdb"))
        cached = CachedEmbedder(emb, store)
        cached.embed(texts)
        warm = CachedEmbedder(emb, store)
        wall, _, _ = timed(lambda: warm.embed(texts))
        print(f"warm, through the store's cache: {warm.misses} of {len(texts):,} recomputed (goal 0), "
              f"{len(texts) / wall:,.0f} items/s")


if __name__ == "__main__":
    main()
