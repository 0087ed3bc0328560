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

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable

from traces.importers.base import Importer, Source
from traces.model import IngestSummary
from traces.ingest import heap
from traces.ingest.writer import BatchWriter

# Steps a parsing process sends at a time. The writer gathers what they send into batches of its
# own size, so theirs bound only their own memory: at 32k steps the two held ~350 MB between them,
# at 4k ~250 MB (OTLP spans, bench/ingest.py's sampler), for the same CPU.
SHARD_BATCH_STEPS = 4_096

# Below this a second process costs more to start than it saves.
MIN_BYTES = 8 << 20


def default_workers() -> int:
    env = os.environ.get("LIBRA_INGEST_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(os.cpu_count() or 1, 4))


def worth_it(imp: Importer, source: Source, layout: str, workers: int) -> bool:
    return (workers > 1 and imp.shardable and layout == "jsonl" and source.path is not None
            and source.data is None and source.size() >= MIN_BYTES)


def _read(k: int, proc: subprocess.Popen, q: queue.Queue) -> None:
    f = proc.stdout
    try:
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            (size,) = struct.unpack("<Q", head)
            q.put((k, pickle.loads(f.read(size))))  # noqa: S301 - our own child process
    except Exception as exc:  # noqa: BLE001 - reported by the main loop
        q.put((k, ("error", f"{type(exc).__name__}: {exc}", [], IngestSummary(), 0)))
    proc.wait()
    q.put((k, ("eof", proc.returncode, [], IngestSummary(), 0)))


def ingest_sharded(
    source: Source, imp: Importer, writer: BatchWriter, summary: IngestSummary, workers: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> None:
    """Parse `source` with `workers` processes; batches are written as they arrive."""
    total = source.size()
    # Plain child processes rather than multiprocessing: nothing of the caller's
    # __main__ is re-run (a notebook or script calling ingest() needs no main guard),
    # and the pipes' back-pressure keeps memory flat when the writer falls behind.
    procs = [
        # Smaller batches than the writer's own, so writing starts while the shards are parsed.
        subprocess.Popen([sys.executable, "-m", "traces.ingest.shard_worker", str(source.path), source.name, imp.name,
                          str(k), str(workers), str(min(SHARD_BATCH_STEPS, max(1, writer.batch_steps // (2 * workers))))],
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=heap.child_env())
        for k in range(workers)
    ]
    q: queue.Queue = queue.Queue(maxsize=2 * workers)
    readers = [threading.Thread(target=_read, args=(k, p, q), daemon=True) for k, p in enumerate(procs)]
    for t in readers:
        t.start()
    done = [False] * workers
    eof = [False] * workers
    pos = [0] * workers
    try:
        while not all(eof):
            k, (kind, batch, rejected, part, at) = q.get()
            if kind == "eof":
                eof[k] = True
                if not done[k]:
                    raise RuntimeError(f"{source.name}: parsing process {k} exited with code {batch} "
                                       "before finishing")
                continue
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
            if progress:
                progress(source.name, min(pos), total)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        while any(t.is_alive() for t in readers):  # let the readers see EOF
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        for p in procs:
            p.wait()
            p.stdout.close()
