"""Parsing one big input in several processes at once.

Parsing and turning runs into Arrow columns is pure Python and holds the GIL,
so a single process tops out at one core however fast DuckDB writes. For an
importer that supports it (`Importer.shardable`), each of `n` processes reads
the whole input but builds only the runs whose key (a run id, a trace id)
hashes to its shard, and hands finished batches to the one process that
writes. Everything that belongs to one run goes through one process, in input
order, so the last version of a run in a file still wins; records that cannot
be keyed go to shard 0, so nothing is rejected twice or lost.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from collections.abc import Callable
from pathlib import Path

from traces.importers.base import Importer, Source
from traces.model import IngestSummary, Parsed, Rejected
from traces.writer import BatchWriter, prepare

# Below this a second process costs more to start than it saves.
MIN_BYTES = 8 << 20
_POLL = 0.05


def default_workers() -> int:
    env = os.environ.get("LIBRA_INGEST_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(os.cpu_count() or 1, 4))


def worth_it(imp: Importer, source: Source, layout: str, workers: int) -> bool:
    return (workers > 1 and imp.shardable and layout == "jsonl" and source.path is not None
            and source.data is None and source.size() >= MIN_BYTES)


def count(summary: IngestSummary, item: Parsed | Rejected) -> None:
    """Account for one importer item in the summary."""
    summary.records += item.records
    if isinstance(item, Rejected):
        summary.quarantined += item.records
        key = item.reason.split(":")[0][:120]
        summary.reasons[key] = summary.reasons.get(key, 0) + item.records


def _work(path: str, name: str, fmt: str, k: int, n: int, batch_steps: int,
          out: mp.Queue, parent: int) -> None:
    from traces import importers
    from traces.ingest import _guarded, _tracked

    pos = [0]

    def send(msg) -> None:
        while True:
            try:
                out.put(msg, timeout=1.0)
                return
            except queue.Full:
                if os.getppid() != parent:  # the ingest died: nobody will read this
                    os._exit(1)

    try:
        imp = importers.get(fmt)
        source = _tracked(Source(name=name, path=Path(path)), Path(path).stat().st_size,
                          lambda _n, done, _t: pos.__setitem__(0, done))
        runs, rejected, n_steps = [], [], 0
        part = IngestSummary()

        def flush() -> None:
            nonlocal runs, rejected, n_steps, part
            send(("batch", prepare(runs) if runs else None, rejected, part, pos[0]))
            runs, rejected, n_steps, part = [], [], 0, IngestSummary()

        for item in _guarded(imp.parse(source, shard=(k, n)), source):
            count(part, item)
            if isinstance(item, Parsed):
                for run in item.runs:
                    runs.append(run)
                    n_steps += len(run.steps)
            else:
                rejected.append((item, name, fmt))
            if n_steps >= batch_steps or len(rejected) >= 1000:
                flush()
        flush()
        send(("done", None, [], IngestSummary(), pos[0]))
    except BaseException as exc:  # noqa: BLE001 - reported to the writing process
        send(("error", f"{type(exc).__name__}: {exc}", [], IngestSummary(), pos[0]))


def ingest_sharded(
    source: Source, imp: Importer, writer: BatchWriter, summary: IngestSummary, workers: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> None:
    """Parse `source` with `workers` processes; batches are written as they arrive."""
    ctx = mp.get_context("spawn")  # forking a process that holds DuckDB's threads is unsafe
    total = source.size()
    queues = [ctx.Queue(maxsize=2) for _ in range(workers)]
    procs = [
        ctx.Process(target=_work, args=(str(source.path), source.name, imp.name, k, workers,
                                        writer.batch_steps, queues[k], os.getpid()),
                    name=f"libra-parse-{k}", daemon=True)
        for k in range(workers)
    ]
    for p in procs:
        p.start()
    done = [False] * workers
    pos = [0] * workers
    try:
        while not all(done):
            got = False
            for k, q in enumerate(queues):
                if done[k]:
                    continue
                try:
                    kind, batch, rejected, part, at = q.get(timeout=_POLL)
                except queue.Empty:
                    if not procs[k].is_alive() and q.empty():
                        raise RuntimeError(
                            f"{source.name}: parsing process {k} exited with code "
                            f"{procs[k].exitcode} before finishing") from None
                    continue
                got = True
                pos[k] = at
                if kind == "error":
                    raise RuntimeError(f"{source.name}: parsing process {k} failed: {batch}")
                if kind == "done":
                    done[k] = True
                    continue
                summary.records += part.records
                summary.quarantined += part.quarantined
                for key, v in part.reasons.items():
                    summary.reasons[key] = summary.reasons.get(key, 0) + v
                if batch is not None:
                    writer.add_batch(batch, rejected)
                else:
                    for rej, src, fmt in rejected:
                        writer.add_rejected(rej, src, fmt)
            if got and progress:
                progress(source.name, min(pos), total)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
        for q in queues:
            q.close()
