"""Ingesting inputs: paths in, each file read by its importer, runs and quarantined records out."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import duckdb

from traces import importers
from traces.importers.base import Source
from traces.importers.records import sample
from traces.ingest.decode import decode
from traces.ingest.files import discover
from traces.ingest.parallel import default_workers
from traces.ingest.source import ingest_source
from traces.ingest.stream import ProgressFn, count
from traces.ingest.writer import BatchWriter
from traces.model import FileTally, IngestSummary, Rejected, Run
from traces.store import Store, StoreBusy

def ingest(
    store: Store,
    paths: Iterable[str | os.PathLike],
    *,
    fmt: str | None = None,
    batch_steps: int = 130_000,
    progress: ProgressFn | None = None,
    on_file: Callable[[Source, str | None], None] | None = None,
    workers: int | None = None,
    importer=None,
) -> IngestSummary:
    """Read every path into the store and say what happened.

    `workers` parsing processes for big inputs (default: the cores, at most 4,
    or `LIBRA_INGEST_WORKERS`); 1 parses everything in this process. `importer`
    reads every input instead of detection (a mapping's, `traces.importers.mapped`);
    one with a `check(source, sample)` is checked against each input first.
    """
    summary = IngestSummary()
    forced = importer or (importers.get(fmt) if fmt else None)
    workers = default_workers() if workers is None else max(1, workers)
    sources = discover(paths)
    first = next(sources, None)  # every path named is checked here, before anything is written
    if first is not None and hasattr(forced, "check"):
        src = decode(first[0]).source
        forced.check(src, sample(src))  # a mapping that does not fit the file fails before anything is written
    writer = BatchWriter(store, summary, batch_steps, background=True, parsers=workers)
    try:
        for source, explicit in itertools.chain([first] if first else [], sources):
            _one(store, source, explicit, writer, summary, forced, progress, on_file, workers)
    finally:
        writer.close()
    record_files(store, summary.per_file)
    return summary


def _one(store: Store, source: Source, explicit: bool, writer: BatchWriter, summary: IngestSummary,
         forced, progress, on_file, workers: int) -> None:
    """One input, accounted; a failure reading it is quarantined and the batch goes on."""
    records, quarantined = summary.records, summary.quarantined
    fmt = encoding = None
    try:
        fmt, encoding = ingest_source(store, source, writer, summary, importer=forced, explicit=explicit,
                                      progress=progress, on_file=on_file, workers=workers)
    except (duckdb.Error, StoreBusy):
        raise  # the store's failure, not this file's
    except Exception as exc:  # noqa: BLE001 - anything reading one file costs only that file
        rej = Rejected(reason=f"could not read this input ({type(exc).__name__}: {exc}); "
                              "what came before the failure was kept"[:2000], raw="")
        writer.add_rejected(rej, source.name, fmt)
        count(summary, rej)
    read = summary.records - records
    bad = summary.quarantined - quarantined
    summary.per_file.append(FileTally(source.name, fmt, encoding, read, read - bad, bad))


def record_files(store: Store, tallies: list[FileTally]) -> None:
    """Keep each input's account in the store (`ingest_files`)."""
    if not tallies:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    store.write(lambda con: con.executemany(
        "INSERT INTO ingest_files (source, format, encoding, records, stored, quarantined, ingested_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [[t.source, t.format, t.encoding, t.records, t.stored, t.quarantined, now] for t in tallies]))


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
