"""Which judge a metric set gets, by the kind of set it is.

A metric set records its kind in `provenance["kind"]` (`pipa`, `proactivity`,
or none for induced and hand-written sets). Packages register a factory for
their kind, as importers register formats; the composition root (`libra`)
registers AutoLibra's, PIPA's and the proactivity model's, so `metrics`
depends on none of them.
"""

from __future__ import annotations

from collections.abc import Callable

from metrics.backends import Backend
from metrics.definitions import MetricSet
from metrics.judges.base import Judge
from traces.store import Store

# (store, metric set, backend, use the Message Batches API) -> its judge, or None when
# the set is not scored by `libra score` (proactivity sets have their own command)
JudgeFactory = Callable[[Store, MetricSet, Backend, bool], Judge | None]
DEFAULT_KIND = "metrics"  # induced and hand-written sets
_FACTORIES: dict[str, JudgeFactory] = {}


def set_kind(metric_set: MetricSet) -> str:
    return str(metric_set.provenance.get("kind") or DEFAULT_KIND)


def register_judge(kind: str, factory: JudgeFactory) -> None:
    _FACTORIES[kind] = factory


def judge_kinds() -> list[str]:
    return sorted(_FACTORIES)


def judge_for(store: Store, metric_set: MetricSet, backend: Backend, batch: bool = False) -> Judge | None:
    kind = set_kind(metric_set)
    factory = _FACTORIES.get(kind) or _FACTORIES.get(DEFAULT_KIND)
    if factory is None:
        raise LookupError(f"no judge registered for metric sets of kind {kind!r}; "
                          f"registered: {', '.join(judge_kinds()) or 'none'}")
    return factory(store, metric_set, backend, batch)
