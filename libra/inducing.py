"""Induction, composed: AutoLibra on the chosen backend, in one call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from autolibra import locators
from autolibra.backends import InductionTools, induction_tools
from autolibra.grounding import OfflineGrounder
from autolibra.induce import InduceConfig, Induction
from autolibra.induce import induce as _induce
from metrics.backends import choose_backend
from traces.store import Store

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def tools(store: Store, backend: str = "auto", max_cost: float | None = None) -> InductionTools:
    """AutoLibra's grounder, namer, judge and matcher on a backend (auto: LLM with a key, else offline).

    Offline, the grounder uses the chosen fitted step locator (`libra locator choose`), per format.
    """
    t = induction_tools(choose_backend(store, backend, max_cost))
    fit = locators.load(store)
    if fit is None or not isinstance(t.grounder, OfflineGrounder):
        return t
    return replace(t, grounder=OfflineGrounder(t.grounder.locator, t.grounder.k, version=fit.version,
                                               by_format=lambda fmt: fit.locator(t.embedder, fmt)))


def induce(store: Store, *, backend: str = "auto", max_cost: float | None = None,
           config: InduceConfig | None = None, set_id: str = "induced", name: str = "Induced metrics",
           with_tools: InductionTools | None = None, progress: Progress | None = None) -> Induction:
    """Metrics from the feedback in the store, saved as a draft; the result has the frontier searched.

    Raises ValueError when there is too little feedback to induce from.
    """
    t = with_tools or tools(store, backend, max_cost)
    return _induce(store, grounder=t.grounder, namer=t.namer, embedder=t.embedder, judge_factory=t.judge_factory,
                   matcher_factory=t.matcher_factory, config=config or InduceConfig(), set_id=set_id, name=name,
                   progress=progress)
