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

from autolibra import backends, charts
from autolibra.aspects import Aspect, load_aspects
from traces.annotation.feedback import load as load_feedback
from traces.model import Feedback
from autolibra.evaluation import MetaEval, OfflineMatcher, meta_evaluate
from autolibra.grounding import OfflineGrounder
from autolibra.locator import StepLocator
from autolibra.signs import detect_sign, split_bullets
from autolibra.induce import InduceConfig, Induction, induce

__all__ = ["Aspect", "Feedback", "InduceConfig", "Induction", "MetaEval", "OfflineGrounder", "OfflineMatcher",
           "StepLocator", "backends", "charts", "detect_sign", "induce", "load_aspects", "load_feedback",
           "meta_evaluate", "split_bullets"]
