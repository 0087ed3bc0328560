"""Ingest, composed: files in, then what every ingest needs afterwards, whoever calls it.

After the runs are written, the full-text index is brought up to date (for
stores up to INDEX_AUTOMATICALLY_UP_TO runs; beyond that `libra index` does
it when asked) and annotators' journalled saves are applied. `libra ingest`,
scheduled ingest jobs and notebooks all come through here, so all three
leave the store in the same state.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from libra.defaults import INDEX_AUTOMATICALLY_UP_TO
from traces import search
from traces.annotation import feedback
from traces.importers.base import Source
from traces.ingest import ingest as ingest_files
from traces.ingest.stream import ProgressFn
from traces.ingest.watch import Watcher
from traces.model import IngestSummary
from traces.store import Store



@dataclass(frozen=True)
class Ingested:
    summary: IngestSummary
    indexed: bool  # whether full-text search was rebuilt
    index_pending: bool  # the store is too big to index on every ingest: run `libra index`


def after_ingest(store: Store, changed: bool, index: bool = True) -> tuple[bool, bool]:
    """Search index and journal after new runs landed; (indexed, index still pending)."""
    indexed = pending = False
    if index and changed and not store.lake:
        if store.scalar("SELECT count(*) FROM runs") <= INDEX_AUTOMATICALLY_UP_TO:
            indexed = rebuild_index(store)
        else:
            pending = True
    feedback.flush(store, timeout=5)  # apply any saves the app journalled while we held the store
    return indexed, pending


def rebuild_index(store: Store) -> bool:
    """(Re)build full-text search; False where there is none (no fts extension, or a lake)."""
    if store.lake:
        return False
    with store.transaction() as con:
        return search.rebuild_search_index(con)


def ingest(store: Store, paths: Iterable[str | os.PathLike[str]], *, fmt: str | None = None,
           batch_steps: int = 130_000, workers: int | None = None, index: bool = True,
           progress: ProgressFn | None = None,
           on_file: Callable[[Source, str | None], None] | None = None,
           mapping: str | os.PathLike[str] | None = None) -> Ingested:
    """Read files, folders, globs or '-' (stdin) into the store, detecting each format.

    With `mapping` (a YAML file, `traces.importers.mapped`), every input is read by it
    instead; a mapping that does not fit raises `MappingError` before anything is written.
    """
    from traces.importers.mapped import MappedImporter

    # Not held: the writer takes the file per batch, so other processes get their turn between batches.
    summary = ingest_files(store, paths, fmt=fmt, batch_steps=batch_steps, workers=workers,
                           progress=progress, on_file=on_file,
                           importer=MappedImporter(Path(mapping)) if mapping is not None else None)
    indexed, pending = after_ingest(store, bool(summary.runs_added or summary.runs_updated), index)
    return Ingested(summary, indexed, pending)


def watch(store: Store, directory: str | os.PathLike[str], *, pattern: str = "*.json*", interval: float = 2.0,
          settle: float = 5.0, once: bool = False,
          on_poll: Callable[[IngestSummary, int], None] | None = None) -> IngestSummary:
    """Follow a directory of OTLP files as the Collector writes and rotates them, until interrupted.

    `on_poll(what one poll wrote, traces still open)` after every poll.
    """
    if not Path(directory).is_dir():
        raise NotADirectoryError(f"{directory} is not a directory")
    w = Watcher(store, directory, pattern=pattern, settle=settle)
    try:
        while True:
            got = w.poll()
            if on_poll:
                on_poll(got, w.open_traces)
            feedback.flush(store, timeout=1)
            if once:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    return w.close()
