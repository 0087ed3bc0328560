"""Ingestion: files in, runs and quarantined records out, nothing lost.

Runs are written in batches; every batch is one transaction holding whole
runs (a run and its steps land together or not at all) and the quarantined
records read alongside them. Re-ingesting the same data adds nothing: runs
are recognised by their content hash. A run whose id is known but whose
content changed replaces the stored version (feedback people wrote in the
app stays).
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from traces import importers
from traces.importers.base import RAW_LIMIT, Source, raw_text, sample
from traces.model import IngestSummary, Parsed, Rejected, Run, dumps
from traces.store import Store

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


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


_RUN_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("native_id", pa.string()), ("source", pa.string()),
    ("format", pa.string()), ("agent", pa.string()), ("model", pa.string()),
    ("task", pa.string()), ("started_at", pa.timestamp("us")), ("ended_at", pa.timestamp("us")),
    ("outcome", pa.string()), ("reward", pa.float64()), ("gold", pa.string()),
    ("metadata", pa.string()), ("content_hash", pa.string()), ("n_steps", pa.int32()),
    ("ingested_at", pa.timestamp("us")),
])
_STEP_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("idx", pa.int32()), ("kind", pa.string()), ("actor", pa.string()),
    ("tool_name", pa.string()), ("tool_args", pa.string()), ("content", pa.string()),
    ("span_id", pa.string()), ("parent_id", pa.string()), ("started_at", pa.timestamp("us")),
    ("ended_at", pa.timestamp("us")), ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()), ("is_error", pa.bool_()), ("metadata", pa.string()),
])
_FEEDBACK_SCHEMA = pa.schema([
    ("feedback_id", pa.string()), ("run_id", pa.string()), ("steps", pa.list_(pa.int32())),
    ("author", pa.string()), ("text", pa.string()), ("rating", pa.float64()),
    ("origin", pa.string()), ("created_at", pa.timestamp("us")),
    ("edited_at", pa.timestamp("us")), ("deleted_at", pa.timestamp("us")),
    ("metadata", pa.string()),
])


def _str(v):
    return None if v is None else v if isinstance(v, str) else str(v)


def _time(v):
    return v if v is None or isinstance(v, datetime) else None


def _num(v):
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 else None


def _opt_dumps(v):
    return None if v is None else dumps(v)


class BatchWriter:
    """Collects runs and rejected records and writes them in whole-run transactions."""

    def __init__(self, store: Store, summary: IngestSummary, batch_steps: int = 130_000,
                 background: bool = False):
        self.store = store
        self.summary = summary
        self.batch_steps = batch_steps
        self.runs: list[tuple[Run, str, str]] = []
        self.rejected: list[tuple[Rejected, str, str | None]] = []
        self.n_steps = 0
        # With `background`, batches are written by one thread while the caller parses the
        # next: DuckDB releases the GIL while it inserts, so both cores work. The queue holds
        # one batch, so at most two batches are ever in memory.
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        if background:
            self._queue = queue.Queue(maxsize=1)
            self._thread = threading.Thread(target=self._drain, name="libra-writer", daemon=True)
            self._thread.start()

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._write(*item)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error = exc

    def _check(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def close(self) -> None:
        """Write what is pending and wait for it; raises what the writer hit."""
        self.flush()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._check()

    def add_run(self, run: Run) -> None:
        h = run.content_hash()
        self.runs.append((run, run.run_id(h), h))
        self.n_steps += len(run.steps)
        if self.n_steps >= self.batch_steps:
            self.flush()

    def add_rejected(self, rej: Rejected, source: str, fmt: str | None) -> None:
        self.rejected.append((rej, source, fmt))
        if len(self.rejected) >= 1000:
            self.flush()

    def flush(self) -> None:
        if not self.runs and not self.rejected:
            return
        runs, rejected = self.runs, self.rejected
        self.runs, self.rejected, self.n_steps = [], [], 0
        if self._thread is not None:
            self._check()
            self._queue.put((runs, rejected))
        else:
            self._write(runs, rejected)

    def _write(self, runs: list[tuple[Run, str, str]], rejected: list) -> None:
        # Within a batch the last version of a run wins, and repeats are duplicates.
        by_id: dict[str, tuple[Run, str, str]] = {}
        seen_hash: set[str] = set()
        dup = 0
        for run, rid, h in runs:
            if h in seen_hash:
                dup += 1
                continue
            seen_hash.add(h)
            if rid in by_id:
                dup += 1
            by_id[rid] = (run, rid, h)
        now = _utcnow()
        with self.store.transaction() as con:
            ids = list(by_id)
            hashes = [h for _, _, h in by_id.values()]
            known = con.execute(
                "SELECT run_id, content_hash FROM runs "
                "WHERE run_id IN (SELECT unnest($1::VARCHAR[])) "
                "OR content_hash IN (SELECT unnest($2::VARCHAR[]))",
                [ids, hashes],
            ).fetchall()
            known_hashes = {h for _, h in known}
            known_ids = {r for r, _ in known}
            fresh, updated = [], []
            for run, rid, h in by_id.values():
                if h in known_hashes:
                    dup += 1
                elif rid in known_ids:
                    updated.append((run, rid, h))
                else:
                    fresh.append((run, rid, h))
            if updated:
                upd = [rid for _, rid, _ in updated]
                con.execute("DELETE FROM steps WHERE run_id IN (SELECT unnest($1::VARCHAR[]))", [upd])
                con.execute(
                    "DELETE FROM feedback WHERE origin = 'imported' "
                    "AND run_id IN (SELECT unnest($1::VARCHAR[]))", [upd],
                )
                con.execute("DELETE FROM runs WHERE run_id IN (SELECT unnest($1::VARCHAR[]))", [upd])
                con.execute("DELETE FROM run_text WHERE run_id IN (SELECT unnest($1::VARCHAR[]))", [upd])
            todo = fresh + updated
            if todo:
                n_steps, n_fb = self._insert(con, todo, now)
                self.summary.steps += n_steps
                self.summary.feedback += n_fb
            if rejected:
                self._quarantine(con, rejected, now)
        self.summary.runs_added += len(fresh)
        self.summary.runs_updated += len(updated)
        self.summary.duplicates += dup

    @staticmethod
    def _insert(con, todo: list[tuple[Run, str, str]], now: datetime) -> tuple[int, int]:
        rc = {f.name: [] for f in _RUN_SCHEMA}
        sc = {f.name: [] for f in _STEP_SCHEMA}
        fc = {f.name: [] for f in _FEEDBACK_SCHEMA}
        for run, rid, h in todo:
            starts = [t for t in (_time(s.started_at) for s in run.steps) if t is not None]
            ends = [t for t in (_time(s.ended_at) or _time(s.started_at) for s in run.steps) if t is not None]
            for k, v in (
                ("run_id", rid), ("native_id", _str(run.native_id)), ("source", _str(run.source)),
                ("format", _str(run.format)), ("agent", _str(run.agent)), ("model", _str(run.model)),
                ("task", _str(run.task)), ("started_at", _time(run.started_at) or (min(starts) if starts else None)),
                ("ended_at", _time(run.ended_at) or (max(ends) if ends else None)),
                ("outcome", _str(run.outcome)), ("reward", _num(run.reward)), ("gold", _opt_dumps(run.gold)),
                ("metadata", _opt_dumps(run.metadata)), ("content_hash", h),
                ("n_steps", len(run.steps)), ("ingested_at", now),
            ):
                rc[k].append(v)
            for j, f in enumerate(run.feedback):
                fid = hashlib.sha256(
                    dumps([rid, j, f.author, f.text, list(f.steps)]).encode()
                ).hexdigest()[:24]
                for k, v in (
                    ("feedback_id", fid), ("run_id", rid), ("steps", list(f.steps)),
                    ("author", _str(f.author)), ("text", _str(f.text)), ("rating", _num(f.rating)),
                    ("origin", f.origin), ("created_at", f.created_at or now),
                    ("edited_at", None), ("deleted_at", None), ("metadata", _opt_dumps(f.metadata)),
                ):
                    fc[k].append(v)
        # Column by column: one comprehension per field is several times faster than
        # appending field by field per step, and this loop is ingest's hot path.
        steps = [st for run, _, _ in todo for st in run.steps]
        sc["run_id"] = [rid for run, rid, _ in todo for _ in run.steps]
        sc["idx"] = [i for run, _, _ in todo for i in range(len(run.steps))]
        sc["kind"] = [str(st.kind) for st in steps]
        # Importers should hand over well-typed values; the writer makes sure, because one
        # odd value would otherwise fail the whole batch.
        for name in ("content", "actor", "tool_name", "span_id", "parent_id"):
            sc[name] = [v if v is None or type(v) is str else str(v) for v in (getattr(st, name) for st in steps)]
        for name in ("started_at", "ended_at"):
            sc[name] = [v if v is None or type(v) is datetime else _time(v) for v in (getattr(st, name) for st in steps)]
        for name in ("input_tokens", "output_tokens"):
            sc[name] = [v if v is None or type(v) is int else _int(v) for v in (getattr(st, name) for st in steps)]
        sc["is_error"] = [bool(st.is_error) for st in steps]
        sc["tool_args"] = [None if st.tool_args is None else dumps(st.tool_args) for st in steps]
        sc["metadata"] = [None if st.metadata is None else dumps(st.metadata) for st in steps]
        runs_t = pa.table(rc, schema=_RUN_SCHEMA)
        con.register("_libra_runs", runs_t)  # registered views are exempt from the replacement-scan ban
        con.execute("INSERT INTO runs BY NAME SELECT * FROM _libra_runs")
        con.unregister("_libra_runs")
        n_steps = len(sc["run_id"])
        if n_steps:
            con.register("_libra_steps", pa.table(sc, schema=_STEP_SCHEMA))
            con.execute("INSERT INTO steps BY NAME SELECT * FROM _libra_steps")
            # the text full-text search indexes, one row per run
            con.execute(
                "INSERT OR REPLACE INTO run_text SELECT run_id, left(string_agg(coalesce(content, '') || ' ' || "
                "coalesce(tool_name, ''), ' ' ORDER BY idx), 20000) FROM _libra_steps GROUP BY run_id")
            con.unregister("_libra_steps")
        n_fb = len(fc["feedback_id"])
        if n_fb:
            con.register("_libra_feedback", pa.table(fc, schema=_FEEDBACK_SCHEMA))
            con.execute("INSERT INTO feedback BY NAME SELECT * FROM _libra_feedback")
            con.unregister("_libra_feedback")
        return n_steps, n_fb

    @staticmethod
    def _quarantine(con, rejected: list[tuple[Rejected, str, str | None]], now: datetime) -> None:
        con.executemany(
            "INSERT INTO quarantine (source, format, line, byte_offset, field, reason, raw, "
            "records, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [src, fmt, r.line, r.offset, r.field, r.reason[:2000], r.raw[:RAW_LIMIT],
                 r.records, now]
                for r, src, fmt in rejected
            ],
        )


def ingest(
    store: Store,
    paths: Iterable[str | os.PathLike],
    *,
    fmt: str | None = None,
    batch_steps: int = 130_000,
    progress: ProgressFn | None = None,
    on_file: Callable[[Source, str | None], None] | None = None,
) -> IngestSummary:
    """Read every path into the store and say what happened."""
    summary = IngestSummary()
    forced = importers.get(fmt) if fmt else None
    writer = BatchWriter(store, summary, batch_steps, background=True)
    try:
        for source, explicit in discover(paths):
            ingest_source(store, source, writer, summary, importer=forced, explicit=explicit,
                          progress=progress, on_file=on_file)
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
    tracked = source if progress is None else _tracked(source, total, progress)
    for item in _guarded(imp.parse(tracked), source):
        if isinstance(item, Parsed):
            summary.records += item.records
            for run in item.runs:
                writer.add_run(run)
        else:
            summary.records += item.records
            summary.quarantined += item.records
            key = item.reason.split(":")[0][:120]
            summary.reasons[key] = summary.reasons.get(key, 0) + item.records
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
