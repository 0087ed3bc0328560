"""Which inputs an ingest reads: files, folders, globs and stdin."""

from __future__ import annotations

import glob
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from traces.importers.base import Source

TRACE_SUFFIXES = {".json", ".jsonl", ".ndjson", ".eval", ".traj", ".csv", ".zip", ".gz"}


def _unreadable(path: Path) -> str | None:
    """Why a file found in a folder is not read: a dangling link, or not a regular file (never opened)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a link to a file that is not there" if path.is_symlink() else "the file went away before it was read"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        return f"{kind}; skipped without reading, so the ingest cannot block on it"
    return None


def discover(paths: Iterable[str | os.PathLike]) -> Iterator[tuple[Source, bool]]:
    """Sources for paths (files, folders, globs, '-' for stdin), with whether named explicitly.

    Every path named is checked before anything is read, so a typo fails the
    command before a partial ingest. Inside folders, dangling links and files
    that are not regular (FIFOs, sockets, devices) come back as sources with a
    `problem`, to be quarantined; a pipe named explicitly (`<(zcat x.gz)`) is read.
    """
    named: list[tuple[str, list[str]]] = []
    for p in paths:
        p = str(p)
        if p == "-":
            named.append((p, [p]))
            continue
        matches = sorted(glob.glob(p, recursive=True)) if glob.has_magic(p) else [p]
        missing = [m for m in matches if not os.path.lexists(m)]
        if not matches or missing:
            raise FileNotFoundError(f"no such file or folder: {missing[0] if missing else p}")
        named.append((p, matches))
    for p, matches in named:
        if p == "-":
            yield Source(name="<stdin>", data=sys.stdin.buffer.read()), True
            continue
        for m in matches:
            path = Path(m)
            if path.is_dir():
                for root, dirs, files in os.walk(path):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    for fn in sorted(files):
                        f = Path(root) / fn
                        if not fn.startswith(".") and f.suffix.lower() in TRACE_SUFFIXES:
                            yield Source(name=str(f), path=f, problem=_unreadable(f)), False
            elif not path.exists():  # a dangling link, named
                yield Source(name=str(path), path=path, problem="a link to a file that is not there"), True
            else:
                yield Source(name=str(path), path=path), glob.has_magic(p) is False
