"""Ingestion: files in, runs and quarantined records out, nothing lost.

Runs are written in batches (`traces.ingest.writer`); every batch is one transaction
holding whole runs (a run and its steps land together or not at all) and the
quarantined records read alongside them. Big inputs in a format that allows
it are parsed by several processes at once (`traces.ingest.parallel`).
"""

from __future__ import annotations

import glob
import io
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from traces import importers
from traces.importers.base import RAW_LIMIT, Source, raw_text, sample
from traces.model import IngestSummary, Parsed, Rejected, Run
from traces.ingest.parallel import count, default_workers, ingest_sharded, worth_it
from traces.store import Store
from traces.ingest.writer import BatchWriter

__all__ = ["BatchWriter", "UnknownFormat", "discover", "ingest", "ingest_runs", "ingest_source"]

TRACE_SUFFIXES = {".json", ".jsonl", ".ndjson", ".eval", ".traj", ".csv", ".zip", ".gz"}

ProgressFn = Callable[[str, int, int], None]  # (source name, bytes done, bytes total)


class UnknownFormat(ValueError):
    pass


def discover(paths: Iterable[str | os.PathLike]) -> Iterator[tuple[Source, bool]]:
    """Sources for paths (files, folders, globs, '-' for stdin), with whether named explicitly."""
    for p in paths:
        p = str(p)
        if p == "-":
            yield Source(name="<stdin>", data=sys.stdin.buffer.read()), True
            continue
        matches = sorted(glob.glob(p, recursive=True)) if glob.has_magic(p) else [p]
        if not matches:
            raise FileNotFoundError(f"no such file or folder: {p}")
        for m in matches:
            path = Path(m)
            if path.is_dir():
                for root, dirs, files in os.walk(path):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    for fn in sorted(files):
                        f = Path(root) / fn
                        if not fn.startswith(".") and f.suffix.lower() in TRACE_SUFFIXES:
                            yield Source(name=str(f), path=f), False
            elif path.exists():
                yield Source(name=str(path), path=path), glob.has_magic(p) is False
            else:
                raise FileNotFoundError(f"no such file or folder: {m}")


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


def ingest_source(
    store: Store,
    source: Source,
    writer: BatchWriter,
    summary: IngestSummary,
    *,
    importer=None,
    explicit: bool = True,
    progress: ProgressFn | None = None,
    on_file=None,
    workers: int = 1,
) -> None:
    summary.files += 1
    if source.name.lower().endswith(".gz") and source.data is None:
        import gzip

        with gzip.open(source.path, "rb") as g:
            source = Source(name=source.name[:-3], data=g.read())
    smp = sample(source)
    imp = importer or importers.detect(source, smp)
    if on_file:
        on_file(source, imp.name if imp else None)
    if imp is None:
        if smp.layout == "empty":
            return
        summary.unrecognised_files.append(source.name)
        if explicit:
            reason = "no importer recognises this input; pass --format to choose one"
            writer.add_rejected(Rejected(reason=reason, raw=raw_text(smp.head), line=1, offset=0),
                                source.name, None)
            summary.quarantined += 1
            summary.records += 1
            summary.reasons[reason] = summary.reasons.get(reason, 0) + 1
        return
    summary.formats[imp.name] = summary.formats.get(imp.name, 0) + 1
    total = source.size()
    if worth_it(imp, source, smp.layout, workers):
        ingest_sharded(source, imp, writer, summary, workers, progress)
    else:
        tracked = source if progress is None else _tracked(source, total, progress)
        for item in _guarded(imp.parse(tracked), source):
            count(summary, item)
            if isinstance(item, Parsed):
                for run in item.runs:
                    writer.add_run(run)
            else:
                writer.add_rejected(item, source.name, imp.name)
    if progress:
        progress(source.name, total, total)


def _guarded(items: Iterator[Parsed | Rejected], source: Source) -> Iterator[Parsed | Rejected]:
    """An importer's stream that cannot take the ingest down with it.

    Importers quarantine bad records themselves; if one still fails, the rest
    of that input is quarantined with the error and the batch goes on.
    """
    n = 0
    last_line = None
    try:
        for item in items:
            n += 1
            last_line = item.line if item.line is not None else last_line
            yield item
    except Exception as exc:  # noqa: BLE001
        try:
            with source.open() as f:
                raw = f.read(RAW_LIMIT)
        except OSError:
            raw = b""
        yield Rejected(
            reason=f"importer failed after {n} records ({type(exc).__name__}: {exc}); "
                   "the rest of this input was not read"[:2000],
            raw=raw_text(raw), line=last_line,
        )


class _ProgressReader(io.RawIOBase):
    def __init__(self, f, name: str, total: int, cb: ProgressFn):
        self._f, self._name, self._total, self._cb = f, name, total, cb
        self._last = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._f.seekable()

    def seek(self, *a):
        return self._f.seek(*a)

    def tell(self):
        return self._f.tell()

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        pos = self._f.tell()
        if pos - self._last >= (1 << 20) or n == 0:
            self._last = pos
            self._cb(self._name, min(pos, self._total), self._total)
        return n

    def close(self):
        self._f.close()
        super().close()


class _TrackedSource(Source):
    def open(self):
        if self.path is None:
            return super().open()
        raw = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by the reader
        return io.BufferedReader(
            _ProgressReader(raw, self.name, self.__dict__["_total"], self.__dict__["_cb"]), 1 << 16)


def _tracked(source: Source, total: int, cb: ProgressFn) -> Source:
    t = _TrackedSource(name=source.name, path=source.path, data=source.data)
    object.__setattr__(t, "_cb", cb)
    object.__setattr__(t, "_total", total)
    return t
