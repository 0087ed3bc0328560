"""Writing parsed runs to the store in whole-run transactions.

Runs become Arrow tables first (`traces.ingest.columns.prepare`), then one transaction per batch
inserts them with the quarantined records read alongside. Preparing is pure
Python and holds the GIL, so it can happen in the process that parsed the
runs (see `traces.ingest.parallel`); writing is DuckDB's and releases it.

Re-ingesting the same data adds nothing: runs are recognised by their content
hash. A run whose id is known but whose content changed replaces the stored
version (feedback people wrote in the app stays). Within a batch the last
version of a run wins, and repeats are duplicates.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from traces.importers.base import RAW_LIMIT
from traces.ingest.columns import Batch, prepare, utcnow
from traces.model import IngestSummary, Rejected, Run
from traces import recovery
from traces.store import Store, retrying

log = logging.getLogger("libra.ingest")


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
            with self.store.transaction(serialise="runs", threads=self.threads) as con:
                write_batch(con, batch, rejected, part)
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
