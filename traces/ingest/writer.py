"""Writing parsed runs to the store in whole-run transactions.

Runs become Arrow tables first (`prepare`), then one transaction per batch
inserts them with the quarantined records read alongside. Preparing is pure
Python and holds the GIL, so it can happen in the process that parsed the
runs (see `traces.ingest.parallel`); writing is DuckDB's and releases it.

Re-ingesting the same data adds nothing: runs are recognised by their content
hash. A run whose id is known but whose content changed replaces the stored
version (feedback people wrote in the app stays). Within a batch the last
version of a run wins, and repeats are duplicates.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from operator import attrgetter
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from traces.importers.base import RAW_LIMIT
from traces.model import IngestSummary, Rejected, Run, Step, StepKind, dumps
from traces import recovery
from traces.store import Store, retrying

log = logging.getLogger("libra.ingest")

RUN_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("native_id", pa.string()), ("source", pa.string()),
    ("format", pa.string()), ("agent", pa.string()), ("model", pa.string()),
    ("task", pa.string()), ("started_at", pa.timestamp("us")), ("ended_at", pa.timestamp("us")),
    ("outcome", pa.string()), ("reward", pa.float64()), ("gold", pa.string()),
    ("metadata", pa.string()), ("content_hash", pa.string()), ("n_steps", pa.int32()),
    ("ingested_at", pa.timestamp("us")),
])
STEP_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("idx", pa.int32()), ("kind", pa.string()), ("actor", pa.string()),
    ("tool_name", pa.string()), ("tool_args", pa.string()), ("content", pa.string()),
    ("span_id", pa.string()), ("parent_id", pa.string()), ("started_at", pa.timestamp("us")),
    ("ended_at", pa.timestamp("us")), ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()), ("is_error", pa.bool_()), ("metadata", pa.string()),
])
FEEDBACK_SCHEMA = pa.schema([
    ("feedback_id", pa.string()), ("run_id", pa.string()), ("steps", pa.list_(pa.int32())),
    ("author", pa.string()), ("text", pa.string()), ("rating", pa.float64()),
    ("origin", pa.string()), ("created_at", pa.timestamp("us")),
    ("edited_at", pa.timestamp("us")), ("deleted_at", pa.timestamp("us")),
    ("metadata", pa.string()),
])


@dataclass(frozen=True)
class Batch:
    """Runs ready to insert: one row per run (unique ids), their steps and feedback."""

    runs: pa.Table
    steps: pa.Table
    feedback: pa.Table
    duplicates: int = 0  # repeats dropped inside the batch


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


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


def prepare(runs: list[Run], now: datetime | None = None) -> Batch:
    """Arrow tables for runs, keeping the last version of each id and dropping repeats."""
    now = now or utcnow()
    by_id: dict[str, tuple[Run, str, str]] = {}
    seen_hash: set[str] = set()
    dup = 0
    for run in runs:
        h = run.content_hash()
        if h in seen_hash:
            dup += 1
            continue
        seen_hash.add(h)
        rid = run.run_id(h)
        if rid in by_id:
            dup += 1
        by_id[rid] = (run, rid, h)
    todo = list(by_id.values())
    rows = []  # one tuple per run, in RUN_SCHEMA's order
    fc = {f.name: [] for f in FEEDBACK_SCHEMA}
    for run, rid, h in todo:
        started, ended = _time(run.started_at), _time(run.ended_at)
        if started is None:  # from the steps when the run does not say
            started = min((t for t in (_time(s.started_at) for s in run.steps) if t is not None), default=None)
        if ended is None:
            ended = max((t for t in (_time(s.ended_at) or _time(s.started_at) for s in run.steps)
                         if t is not None), default=None)
        rows.append((
            rid, _str(run.native_id), _str(run.source), _str(run.format), _str(run.agent),
            _str(run.model), _str(run.task), started, ended, _str(run.outcome), _num(run.reward),
            _opt_dumps(run.gold), _opt_dumps(run.metadata), h, len(run.steps), now,
        ))
        for j, f in enumerate(run.feedback):
            fid = hashlib.sha256(dumps([rid, j, f.author, f.text, list(f.steps)]).encode()).hexdigest()[:24]
            for k, v in (
                ("feedback_id", fid), ("run_id", rid), ("steps", list(f.steps)),
                ("author", _str(f.author)), ("text", _str(f.text)), ("rating", _num(f.rating)),
                ("origin", f.origin), ("created_at", f.created_at or now),
                ("edited_at", None), ("deleted_at", None), ("metadata", _opt_dumps(f.metadata)),
            ):
                fc[k].append(v)
    columns = zip(*rows, strict=True) if rows else ([] for _ in RUN_SCHEMA)
    rc = {f.name: pa.array(col, f.type) for f, col in zip(RUN_SCHEMA, columns, strict=True)}
    return Batch(pa.table(rc, schema=RUN_SCHEMA), _step_table(todo),
                 pa.table(fc, schema=FEEDBACK_SCHEMA), dup)


_NONE = type(None)
_STR, _TIME, _INT = frozenset({str, _NONE}), frozenset({datetime, _NONE}), frozenset({int, _NONE})
_KIND = _STR | {StepKind}
_STEP_GETTERS = tuple((name, attrgetter(name)) for name in Step.__slots__)


def _column(values: tuple, arrow_type: pa.DataType, ok: frozenset, fix) -> pa.Array:
    # Importers should hand over well-typed values; the writer makes sure, because one
    # odd value would otherwise fail the whole batch. Checking the types present is one
    # pass in C, so only a column that holds an odd value is converted value by value.
    if not set(map(type, values)) <= ok:
        values = [v if type(v) in ok else fix(v) for v in values]
    try:
        return pa.array(values, arrow_type)
    except OverflowError:  # an integer past 64 bits, which no column can hold
        return pa.array([None if type(v) is int and not -(2**63) <= v < 2**63 else v for v in values],
                        arrow_type)


def _step_table(todo: list[tuple[Run, str, str]]) -> pa.Table:
    """The steps of the runs as one Arrow table; ingest's hot path, so column by column."""
    steps = [st for run, _, _ in todo for st in run.steps]
    if not steps:
        return STEP_SCHEMA.empty_table()
    c = {name: list(map(get, steps)) for name, get in _STEP_GETTERS}
    cols = {
        "run_id": pa.array([rid for run, rid, _ in todo for _ in run.steps], pa.string()),
        "idx": pa.array([i for run, _, _ in todo for i in range(len(run.steps))], pa.int32()),
        # StepKind members are str subclasses holding their value, which Arrow reads as is
        "kind": _column(c["kind"], pa.string(), _KIND, str),
        "is_error": _column(c["is_error"], pa.bool_(), frozenset({bool}), bool),
        "tool_args": pa.array([None if v is None else dumps(v) for v in c["tool_args"]], pa.string()),
        "metadata": pa.array([None if v is None else dumps(v) for v in c["metadata"]], pa.string()),
    }
    for name in ("content", "actor", "tool_name", "span_id", "parent_id"):
        cols[name] = _column(c[name], pa.string(), _STR, str)
    for name in ("started_at", "ended_at"):
        cols[name] = _column(c[name], pa.timestamp("us"), _TIME, _time)
    for name in ("input_tokens", "output_tokens"):
        cols[name] = _column(c[name], pa.int64(), _INT, _int)
    return pa.table(cols, schema=STEP_SCHEMA)


def _keep(t: pa.Table, ids: list[str]) -> pa.Table:
    return t.filter(pc.is_in(t["run_id"], value_set=pa.array(ids, pa.string())))


def write_batch(con, batch: Batch, rejected: list[tuple[Rejected, str, str | None]],
                summary: IngestSummary) -> None:
    """Insert a prepared batch and quarantined records in the caller's transaction."""
    ids = batch.runs["run_id"].to_pylist()
    hashes = batch.runs["content_hash"].to_pylist()
    dup = batch.duplicates
    known = con.execute(
        "SELECT run_id, content_hash FROM runs WHERE run_id IN (SELECT unnest($1::VARCHAR[])) "
        "OR content_hash IN (SELECT unnest($2::VARCHAR[]))",
        [ids, hashes],
    ).fetchall() if ids else []
    known_hashes = {h for _, h in known}
    known_ids = {r for r, _ in known}
    fresh, updated = [], []
    for rid, h in zip(ids, hashes, strict=True):
        if h in known_hashes:
            dup += 1
        elif rid in known_ids:
            updated.append(rid)
        else:
            fresh.append(rid)
    recovery.remove_runs(con, updated)  # replaced whole by their new versions below
    n = len(fresh) + len(updated)
    if n:
        runs, steps, fb = batch.runs, batch.steps, batch.feedback
        if n < len(ids):
            todo = fresh + updated
            runs, steps, fb = _keep(runs, todo), _keep(steps, todo), _keep(fb, todo)
        _insert(con, runs, steps, fb)
        summary.steps += steps.num_rows
        summary.feedback += fb.num_rows
    if rejected:
        quarantine(con, rejected, utcnow())
    summary.runs_added += len(fresh)
    summary.runs_updated += len(updated)
    summary.duplicates += dup


def _insert(con, runs: pa.Table, steps: pa.Table, fb: pa.Table) -> None:
    con.register("_libra_runs", runs)  # registered views are exempt from the replacement-scan ban
    con.execute("INSERT INTO runs BY NAME SELECT * FROM _libra_runs")
    con.unregister("_libra_runs")
    if steps.num_rows:
        con.register("_libra_steps", steps)
        con.execute("INSERT INTO steps BY NAME SELECT * FROM _libra_steps")
        con.unregister("_libra_steps")
    if fb.num_rows:
        con.register("_libra_feedback", fb)
        con.execute("INSERT INTO feedback BY NAME SELECT * FROM _libra_feedback")
        con.unregister("_libra_feedback")


def quarantine(con, rejected: list[tuple[Rejected, str, str | None]], now: datetime) -> None:
    # Ids come from the clock, not a sequence (a lake has none): increasing across batches
    # and processes, 1,024 to a microsecond.
    base = time.time_ns() // 1000 * 1024
    con.executemany(
        "INSERT INTO quarantine (id, source, format, line, byte_offset, field, reason, raw, "
        "records, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[base + i, src, fmt, r.line, r.offset, r.field, r.reason[:2000], r.raw[:RAW_LIMIT], r.records, now]
         for i, (r, src, fmt) in enumerate(rejected)],
    )


# Gathered batches are written once they hold this much (or 2 x batch_steps steps). A step count
# alone let the peak grow with step size: 260k steps of ~1.5 KiB spans are ~400 MB of Arrow, copied
# again into DuckDB's transaction, and peak memory at 1M spans was 1.35 x that at 200k; with this
# bound ~1.2 x, at the same CPU (bench/ingest.py).
GATHER_BYTES = 48 << 20


class BatchWriter:
    """Collects runs and rejected records and writes them in whole-run transactions."""

    def __init__(self, store: Store, summary: IngestSummary, batch_steps: int = 130_000,
                 background: bool = False, parsers: int = 1):
        self.store = store
        self.summary = summary
        if store.path != ":memory:":
            # a process that opened the store before another one was killed mid-ingest
            # (an app running `watch`) repairs before it writes, not only at its start
            with store.connection() as con:
                recovery.recover(con)
        self.batch_steps = batch_steps
        # DuckDB's threads for writing: the cores the parsing threads or processes leave
        # free. More only contend with them (on two cores, ingest ran 7% faster with one).
        self.threads = max(1, (os.cpu_count() or 1) - parsers)
        self.runs: list[Run] = []
        self.rejected: list[tuple[Rejected, str, str | None]] = []
        self.n_steps = 0
        self._gathered: list[tuple[Batch, list]] = []
        self._gathered_ids: set[str] = set()
        self._gathered_steps = 0
        self._gathered_bytes = 0
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
        self.threads = os.cpu_count() or 1  # parsing is over: what is left to write gets every core
        self.flush()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._check()

    def add_run(self, run: Run) -> None:
        self.runs.append(run)
        self.n_steps += len(run.steps)
        if self.n_steps >= self.batch_steps:
            self.flush()

    def add_rejected(self, rej: Rejected, source: str, fmt: str | None) -> None:
        self.rejected.append((rej, source, fmt))
        if len(self.rejected) >= 1000:
            self.flush()

    def add_batch(self, batch: Batch, rejected: list[tuple[Rejected, str, str | None]]) -> None:
        """A batch prepared elsewhere (a parsing process), written in order with the rest.

        Small batches are gathered up to twice `batch_steps` (or GATHER_BYTES) before writing: DuckDB writes
        a transaction of at least a row group straight to the file, smaller ones through
        its log first, and every transaction of an ingest that lets the file go between
        batches ends in a checkpoint. Arrow batches are compact, so gathering more costs
        little memory. A batch naming a run already gathered is written after it.
        """
        ids = set(batch.runs["run_id"].to_pylist()) | set(batch.runs["content_hash"].to_pylist())
        if ids & self._gathered_ids:
            self._flush_gathered()
        self._gathered.append((batch, rejected))
        self._gathered_ids |= ids
        self._gathered_steps += batch.steps.num_rows
        self._gathered_bytes += batch.steps.nbytes + batch.runs.nbytes
        if self._gathered_steps >= 2 * self.batch_steps or self._gathered_bytes >= GATHER_BYTES:
            self._flush_gathered()

    def _flush_gathered(self) -> None:
        if not self._gathered:
            return
        parts, self._gathered, self._gathered_ids, self._gathered_steps = self._gathered, [], set(), 0
        self._gathered_bytes = 0
        batch = parts[0][0] if len(parts) == 1 else Batch(
            pa.concat_tables([b.runs for b, _ in parts]), pa.concat_tables([b.steps for b, _ in parts]),
            pa.concat_tables([b.feedback for b, _ in parts]), sum(b.duplicates for b, _ in parts))
        self._submit(batch, [r for _, rej in parts for r in rej])

    def flush(self) -> None:
        self._flush_gathered()
        if not self.runs and not self.rejected:
            return
        runs, rejected = self.runs, self.rejected
        self.runs, self.rejected, self.n_steps = [], [], 0
        self._submit(runs, rejected)

    def _submit(self, runs: list[Run] | Batch, rejected: list) -> None:
        if self._thread is not None:
            self._check()
            self._queue.put((runs, rejected))
        else:
            self._write(runs, rejected)

    def _write(self, runs: list[Run] | Batch, rejected: list) -> None:
        batch = runs if isinstance(runs, Batch) else prepare(runs)

        def attempt() -> IngestSummary:
            # A fresh tally per attempt: a lake transaction that lost a conflict is run again.
            part = IngestSummary()
            with self.store.transaction(serialise="runs") as con:
                con.execute(f"SET threads = {self.threads}")
                try:
                    write_batch(con, batch, rejected, part)
                finally:
                    con.execute("RESET threads")
            return part
        # The intent outlives a crash inside the commit, and names the runs to repair
        # (traces/recovery.py); an in-memory store does not outlive its process at all.
        durable = self.store.path != ":memory:" and batch.runs.num_rows > 0
        intent = self.store.write(lambda con: recovery.begin(
            con, batch.runs["run_id"].to_pylist(), batch.steps.num_rows)) if durable else None
        part = retrying(attempt)
        if intent is not None:
            self.store.write(lambda con: recovery.end(con, intent))
        for k in ("steps", "feedback", "runs_added", "runs_updated", "duplicates"):
            setattr(self.summary, k, getattr(self.summary, k) + getattr(part, k))
        if batch.runs.num_rows:
            log.info("committed %s runs, %s steps (%s runs stored so far)", f"{batch.runs.num_rows:,}",
                     f"{batch.steps.num_rows:,}", f"{self.summary.runs_added + self.summary.runs_updated:,}")
