"""Ingestion: files in, runs and quarantined records out, nothing lost.

Runs are written in batches (`traces.ingest.writer`); every batch is one transaction
holding whole runs (a run and its steps land together or not at all) and the
quarantined records read alongside them. Big inputs in a format that allows
it are parsed by several processes at once (`traces.ingest.parallel`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from traces import importers
from traces.importers.base import Source
from traces.ingest.files import TRACE_SUFFIXES, discover
from traces.ingest.parallel import default_workers
from traces.ingest.source import ingest_source
from traces.ingest.stream import ProgressFn
from traces.ingest.writer import BatchWriter
from traces.model import IngestSummary, Run
from traces.store import Store

__all__ = ["TRACE_SUFFIXES", "BatchWriter", "discover", "ingest", "ingest_runs", "ingest_source"]


def ingest(
    store: Store,
    paths: Iterable[str | os.PathLike],
    *,
    fmt: str | None = None,
    batch_steps: int = 130_000,
    progress: ProgressFn | None = None,
    on_file: Callable[[Source, str | None], None] | None = None,
    workers: int | None = None,
) -> IngestSummary:
    """Read every path into the store and say what happened.

    `workers` parsing processes for big inputs (default: the cores, at most 4,
    or `LIBRA_INGEST_WORKERS`); 1 parses everything in this process.
    """
    summary = IngestSummary()
    forced = importers.get(fmt) if fmt else None
    workers = default_workers() if workers is None else max(1, workers)
    writer = BatchWriter(store, summary, batch_steps, background=True, parsers=workers)
    try:
        for source, explicit in discover(paths):
            ingest_source(store, source, writer, summary, importer=forced, explicit=explicit,
                          progress=progress, on_file=on_file, workers=workers)
    finally:
        writer.close()
    return summary


def ingest_runs(store: Store, runs: Iterable[Run]) -> IngestSummary:
    """Write runs built in code (a notebook, a test, the demo) through the same path as files."""
    summary = IngestSummary()
    writer = BatchWriter(store, summary)
    try:
        for run in runs:
            summary.records += 1
            writer.add_run(run)
    finally:
        writer.close()
    return summary
