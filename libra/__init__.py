"""Libra: evaluate AI agents from their traces and from what people say about them.

The one composition root. Notebooks, the `libra` command (`libra.cli`), the
app (`libra.web`), the scheduler, `bench/` and Ray workers all call these:

    import libra
    store = libra.open_store("libra.duckdb")
    libra.ingest(store, ["logs/"])                  # formats detected; search index and journal after
    result = libra.induce(store)                    # metrics from people's feedback (offline without a key)
    libra.score(store)                              # every approved set on the runs it has not scored
    libra.reports.agent_summary(store, result.metric_set)

The packages below do the work and never import this one: `traces` (the
store, importers, ingestion, annotation), `metrics` (metric sets, judges,
language models, embeddings, jobs, reports), `autolibra` (induction,
coverage and redundancy) and `pipa` (atomic criteria and proactivity).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from libra.defaults import JOB_LOCK_TIMEOUT
from traces.store import Store, default_db_path

if TYPE_CHECKING:
    from autolibra.induce import InduceConfig, Induction
    from libra import approval, preferences, proactive, reports
    from libra.checking import CheckReport, check
    from libra.comparing import compare, compare_report
    from libra.exporting import Exported, export_adp
    from libra.living import approve_update, new_feedback_coverage, propose_update
    from libra.grounding import StepScore, choose_locator, fit_locator, ground, locator_versions
    from libra.inducing import induce
    from libra.ingesting import Ingested, ingest, rebuild_index, watch
    from libra.scoring import build_judge, score, score_on_ray, score_pipa_runs
    from libra.lake import maintain_lake
    from libra.serving import serve
    from metrics import sets
    from metrics.backends import Backend, choose_backend
    from metrics.definitions import Metric, MetricSet

# Loaded on first use: `libra --help` and the app's first page need none of the models.
_LAZY = {
    "InduceConfig": "autolibra.induce", "Induction": "autolibra.induce", "approval": None, "preferences": None, "proactive": None,
    "reports": None,
    "check": "libra.checking", "CheckReport": "libra.checking", "compare": "libra.comparing", "export_adp": "libra.exporting", "Exported": "libra.exporting",
    "new_feedback_coverage": "libra.living", "propose_update": "libra.living", "approve_update": "libra.living",
    "compare_report": "libra.comparing", "ground": "libra.grounding",
    "StepScore": "libra.grounding", "fit_locator": "libra.grounding", "choose_locator": "libra.grounding",
    "locator_versions": "libra.grounding", "induce": "libra.inducing", "Ingested": "libra.ingesting", "ingest": "libra.ingesting",
    "rebuild_index": "libra.ingesting", "watch": "libra.ingesting", "build_judge": "libra.scoring",
    "score": "libra.scoring", "score_on_ray": "libra.scoring", "score_pipa_runs": "libra.scoring",
    "serve": "libra.serving", "maintain_lake": "libra.lake",
    "sets": None, "Backend": "metrics.backends", "choose_backend": "metrics.backends",
    "Metric": "metrics.definitions", "MetricSet": "metrics.definitions",
}
_PACKAGES = {"preferences": "libra.preferences", "approval": "libra.approval", "proactive": "libra.proactive", "reports": "libra.reports", "sets": "metrics.sets"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'libra' has no attribute {name!r}")
    module = _LAZY[name]
    value = importlib.import_module(_PACKAGES[name]) if module is None else getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"
__all__ = ["Backend", "CheckReport", "InduceConfig", "Induction", "Ingested", "Metric", "MetricSet", "StepScore", "Store",
           "approval", "build_judge",
           "check", "choose_backend", "compare", "compare_report", "Exported", "export_adp", "new_feedback_coverage", "propose_update", "approve_update", "choose_locator", "fit_locator", "ground", "induce", "locator_versions", "ingest", "maintain_lake", "open_store", "preferences", "proactive", "rebuild_index", "reports", "score",
           "score_on_ray", "score_pipa_runs", "serve", "sets", "watch"]



def open_store(path: str | os.PathLike[str] | None = None, *, lock_timeout: float = JOB_LOCK_TIMEOUT,
               create: bool = True) -> Store:
    """A store: a DuckDB file, `:memory:`, or `ducklake:postgres:CONNINFO data=PATH`.

    Default: $LIBRA_STORE, else $LIBRA_DB, else ./libra.duckdb. A file that is not
    a DuckDB database raises `traces.store.NotAStore`; so does a missing file
    with `create=False`.
    """
    return Store(path if path is not None else default_db_path(), lock_timeout=lock_timeout, create=create)
