"""Which backend does the work: a language model when a key is set, offline methods otherwise.

Every result records which one produced it; offline results are labelled as
such wherever they are shown. AutoLibra builds its grounder, namer and matcher
on the backend chosen here, PIPA takes its `llm`, and the judge registry
(`metrics.judges.registry`) its whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from metrics.embeddings import Embedder, default_embedder
from metrics.llm.budget import Budget
from metrics.llm.client import LLM, LLMConfig, api_key_available
from traces.store import Store

BackendName = Literal["auto", "llm", "offline"]
OFFLINE_LABEL = "offline (embeddings and classifiers; set ANTHROPIC_API_KEY for the LLM backend)"


@dataclass(frozen=True)
class Backend:
    kind: Literal["llm", "offline"]
    label: str
    embedder: Embedder
    llm: LLM | None = None


def choose_backend(store: Store | None, prefer: str = "auto", max_cost: float | None = None,
                   config: LLMConfig | None = None, embedder: Embedder | None = None) -> Backend:
    """The LLM backend with `ANTHROPIC_API_KEY` (or when asked for), else the offline one."""
    if prefer not in ("auto", "llm", "offline"):
        raise ValueError("backend must be auto, llm or offline")
    if prefer == "llm" and not api_key_available():
        raise RuntimeError("the llm backend needs ANTHROPIC_API_KEY in the environment")
    emb = embedder or default_embedder(store)
    if prefer == "llm" or (prefer == "auto" and api_key_available()):
        llm = LLM(store, config or LLMConfig.from_env(), budget=Budget(max_cost))
        return Backend("llm", f"LLM ({llm.config.model})", emb, llm)
    return Backend("offline", OFFLINE_LABEL, emb)
