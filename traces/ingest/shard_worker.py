"""A parsing process, as `ingest_sharded` starts it: `python -m traces.ingest.shard_worker PATH NAME FMT K N STEPS`.

It parses the runs of shard K of N and sends them as prepared batches. Its own
module, importing neither the store nor DuckDB (`traces.ingest` loads them
lazily): a parsing process needs pyarrow only, and DuckDB would cost each one
~60 MB of resident memory and ~0.1 CPU-s for nothing. `traces.ingest.parallel`,
which starts these processes, imports the writer and so the store.
"""

from __future__ import annotations

import gc
import os
import pickle
import struct
import sys
from pathlib import Path

from traces import importers
from traces.importers.base import Source
from traces.ingest.columns import prepare
from traces.ingest.stream import count, guarded, tracked
from traces.model import IngestSummary, Parsed


def _work(path: str, name: str, fmt: str, k: int, n: int, batch_steps: int, out) -> None:
    """A parsing process: batches of its shard, as length-prefixed pickles on `out`."""
    pos = [0]

    def send(msg) -> None:
        blob = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(struct.pack("<Q", len(blob)))
        out.write(blob)
        out.flush()

    try:
        imp = importers.get(fmt)
        source = tracked(Source(name=name, path=Path(path)), Path(path).stat().st_size,
                          lambda _n, done, _t: pos.__setitem__(0, done))
        runs, rejected, n_steps = [], [], 0
        part = IngestSummary()

        def flush() -> None:
            nonlocal runs, rejected, n_steps, part
            send(("batch", prepare(runs) if runs else None, rejected, part, pos[0]))
            runs, rejected, n_steps, part = [], [], 0, IngestSummary()

        # Parsed runs are many small objects that live until the batch is sent; the cyclic
        # collector would walk them again and again for nothing (they hold no cycles).
        gc.disable()
        for item in guarded(imp.parse(source, shard=(k, n)), source):
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
    except BrokenPipeError:  # the ingest that started us is gone
        os._exit(1)
    except BaseException as exc:  # noqa: BLE001 - reported to the writing process
        send(("error", f"{type(exc).__name__}: {exc}", [], IngestSummary(), pos[0]))


if __name__ == "__main__":
    a = sys.argv[1:]
    _work(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]), sys.stdout.buffer)
