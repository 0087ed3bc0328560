"""Embedding a backlog ahead of offline judging, composed: which runs, then each partition exactly once."""

from __future__ import annotations

from collections.abc import Callable

from metrics.jobs.embed_backlog import EmbedSummary, embed_backlog
from metrics.scoring import select_runs
from traces.store import Store


def embed(store: Store, *, model: str | None = None, agent: str | None = None, fmt: str | None = None,
          ray: str | None = None, partition_size: int = 500,
          progress: Callable[[int, int], None] | None = None) -> EmbedSummary:
    """Embed the steps of runs not yet embedded (optionally only an agent's or a format's), resumably."""
    ids = select_runs(store, agent=agent, fmt=fmt)
    return embed_backlog(store, model, ray=ray, run_ids=ids, size=partition_size, progress=progress)
