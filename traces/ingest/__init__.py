"""Ingestion: files in, runs and quarantined records out, nothing lost.

Runs are written in batches (`traces.ingest.writer`); every batch is one transaction
holding whole runs (a run and its steps land together or not at all) and the
quarantined records read alongside them. Big inputs in a format that allows
it are parsed by several processes at once (`traces.ingest.parallel`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from traces.ingest.files import TRACE_SUFFIXES, discover
    from traces.ingest.inputs import ingest, ingest_runs, record_files
    from traces.ingest.source import ingest_source
    from traces.ingest.writer import BatchWriter

__all__ = ["TRACE_SUFFIXES", "BatchWriter", "discover", "ingest", "ingest_runs", "ingest_source", "record_files"]

# Loaded on first use rather than here: a parsing process imports a module of this
# package, and must not load DuckDB and the store along with it (see `shard_worker`).
_WHERE = {"TRACE_SUFFIXES": "files", "discover": "files", "ingest": "inputs", "ingest_runs": "inputs",
          "record_files": "inputs", "ingest_source": "source", "BatchWriter": "writer"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'traces.ingest' has no attribute {name!r}")
    return getattr(importlib.import_module(f"traces.ingest.{_WHERE[name]}"), name)
