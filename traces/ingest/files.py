"""Which inputs an ingest reads: files, folders, globs and stdin."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from traces.importers.base import Source

TRACE_SUFFIXES = {".json", ".jsonl", ".ndjson", ".eval", ".traj", ".csv", ".zip", ".gz"}


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
