"""AutoLibra: metrics induced from people's open-ended feedback on agent runs.

    from traces.store import Store
    import autolibra

    store = Store("libra.duckdb")
    b = autolibra.backends.choose(store)          # LLM with a key, offline without
    result = autolibra.induce(store, grounder=b.grounder, namer=b.namer, embedder=b.embedder,
                              judge_factory=b.judge_factory, matcher_factory=b.matcher_factory)
    result.metric_set                             # named metrics with good and bad examples
    result.frontier()                             # coverage and redundancy of every candidate
    autolibra.charts.frontier_chart(result.frontier())
"""

import importlib
from typing import Any

# Loaded on first use, so `import autolibra.locators` (say, by `libra check`) does not pull in
# scikit-learn, the embedding model and the charts with it.
_LAZY = {
    "backends": None, "charts": None,
    "Aspect": "autolibra.aspects", "load_aspects": "autolibra.aspects",
    "load_feedback": ("traces.annotation.feedback", "load"), "Feedback": "traces.model",
    "MetaEval": "autolibra.evaluation", "OfflineMatcher": "autolibra.evaluation",
    "meta_evaluate": "autolibra.evaluation", "OfflineGrounder": "autolibra.grounding",
    "StepLocator": "autolibra.locator", "detect_sign": "autolibra.signs", "split_bullets": "autolibra.signs",
    "InduceConfig": "autolibra.induce", "Induction": "autolibra.induce", "induce": "autolibra.induce",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'autolibra' has no attribute {name!r}")
    where = _LAZY[name]
    if where is None:
        value = importlib.import_module(f"autolibra.{name}")
    elif isinstance(where, tuple):
        value = getattr(importlib.import_module(where[0]), where[1])
    else:
        value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


__all__ = ["Aspect", "Feedback", "InduceConfig", "Induction", "MetaEval", "OfflineGrounder", "OfflineMatcher",
           "StepLocator", "backends", "charts", "detect_sign", "induce", "load_aspects", "load_feedback",
           "meta_evaluate", "split_bullets"]
