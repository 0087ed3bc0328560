"""Importers, one module per format, found and registered automatically.

Adding a format means adding a module here that defines an `Importer`
subclass and calls `register(...)` on an instance. Third-party packages can
register theirs through the `libra.importers` entry point group.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, replace
from importlib.metadata import entry_points

from traces.importers.base import Importer, Sample, Source
from traces.importers.records import sample

_REGISTRY: dict[str, Importer] = {}
_loaded = False


def register(importer: Importer) -> Importer:
    if importer.name in _REGISTRY and type(_REGISTRY[importer.name]) is not type(importer):
        raise ValueError(f"an importer named {importer.name!r} is already registered")
    _REGISTRY[importer.name] = importer
    return importer


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_") and mod.name != "base":
            importlib.import_module(f"{__name__}.{mod.name}")
    for ep in entry_points(group="libra.importers"):
        ep.load()


def all_importers() -> list[Importer]:
    _load()
    return sorted(_REGISTRY.values(), key=lambda i: (-i.priority, i.name))


def get(name: str) -> Importer:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown format {name!r}; known formats: {known}") from None


def _sniffs(imp: Importer, smp: Sample) -> bool:
    try:
        return bool(imp.sniff(smp))
    except Exception:  # noqa: BLE001 - a sniffer that trips on odd input just declines
        return False


def detect(source: Source, smp: Sample | None = None) -> Importer | None:
    """The importer that recognises this input, or None.

    For JSON lines, each sampled record is shown to every importer and the one
    that recognises most of them wins (ties: priority), so one odd record at the
    top decides nothing; otherwise the first importer, by priority, that
    recognises the sample.
    """
    smp = smp or sample(source)
    importers = all_importers()
    if len(smp.records) > 1:
        votes = {imp.name: sum(_sniffs(imp, replace(smp, first=rec)) for rec in smp.records) for imp in importers}
        best = max(importers, key=lambda imp: votes[imp.name])  # max keeps the first of equals: priority order
        return best if votes[best.name] else None
    return next((imp for imp in importers if _sniffs(imp, smp)), None)


@dataclass(frozen=True)
class Verdict:
    importer: str
    recognised: int  # sampled records it recognised
    sampled: int
    chosen: bool
    expects: str


def explain(source: Source) -> tuple[Sample, list[Verdict]]:
    """Why each importer takes or declines an input: what it recognised of the sample, what it expects."""
    smp = sample(source)
    chosen = detect(source, smp)
    recs = smp.records if len(smp.records) > 1 else (smp.first,)
    out = []
    for imp in all_importers():
        n = sum(_sniffs(imp, replace(smp, first=r)) for r in recs) if len(smp.records) > 1 else int(_sniffs(imp, smp))
        out.append(Verdict(imp.name, n, len(recs), chosen is imp, imp.expects or imp.description))
    return smp, out


__all__ = ["Importer", "Source", "Verdict", "all_importers", "detect", "explain", "get", "register"]
