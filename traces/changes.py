"""What changed in a store file since an answer was computed, cheaply enough to ask on every rerun.

A database file's stats (`files_version`) move with every commit, from any
process, which is all a cache of answers needs to stay correct. But a note saved
in the app commits too, and then every kept answer (a dashboard over a million
verdicts, a run's 200 steps) was thrown away although none of them reads notes:
each page after a save recomputed them (`bench/app.py`).

So this process keeps account of its own commits. A commit made through
`Store.transaction(touches=...)` names the one kind of data it wrote; if the
file was exactly as this process last left it before the commit, its new stats
are expected, and an answer that reads none of that kind keeps its version
(`version(..., ignoring=...)`). Anything this process did not account for (another
process's commit, a write outside a transaction, a kill's recovery) leaves the
file at stats nobody expected, and every answer's version moves: unknown changes
are always seen.

DuckDB folds its log into the file when the last connection closes, which
changes the stats again; `settle` checkpoints first, while the file is still
held, so the folded file is the expected one (a close after a checkpoint leaves
the file alone, as a test checks).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field

FileVersion = tuple[tuple[int, int, int] | None, ...]


def files_version(*paths: str) -> FileVersion:
    """The files' identities, sizes and modification times (None for a missing one): moves with
    every write to them, from any process, and costs a stat each.

    Not their change times: SQLite run as root gives its log to the database's owner each time a
    connection opens it, which moves the change time without a write, so a new thread reading the
    feedback journal threw away every answer kept under the journal's version.
    """
    out: list[tuple[int, int, int] | None] = []
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            out.append(None)
            continue
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


@dataclass
class _Account:
    expected: FileVersion | None = None  # the files as this process's last accounted commit left them
    base: Hashable = None  # moves with every change but this process's own commits of a named kind
    counts: dict[str, int] = field(default_factory=dict)  # this process's commits of each kind


_lock = threading.Lock()
_accounts: dict[str, _Account] = {}


def version(key: str, now: FileVersion, ignoring: Collection[str] = ()) -> Hashable:
    """A value that changes whenever the files change, except by this process's own commits of the
    kinds in `ignoring`. `now`: the files' version, taken just before."""
    with _lock:
        a = _accounts.get(key)
        if a is None:
            return (("file", now), ())
        base = a.base if now == a.expected else ("file", now)
        return base, tuple(sorted((k, n) for k, n in a.counts.items() if k not in ignoring))


def committed(key: str, before: FileVersion, after: FileVersion, touches: str | None) -> None:
    """This process committed one transaction, which wrote only `touches` (None: anything).

    `before` and `after` are the files' versions around it, taken while this process held the file
    and no other transaction of its own could run (`Store.transaction` holds the connection's lock).
    """
    with _lock:
        a = _accounts.setdefault(key, _Account())
        if touches is None:
            a.base = ("file", after)
        elif before != a.expected:
            # something unaccounted came first: the version readers have had since then, so
            # answers taken after it still hold
            a.base = ("file", before)
        if touches is not None:
            a.counts[touches] = a.counts.get(touches, 0) + 1
        a.expected = after


def settle(key: str, now: FileVersion, checkpoint: Callable[[], FileVersion]) -> None:
    """Before this process lets the file go: fold the log now if everything in it is accounted for,
    so that the closed file still has the expected version. `checkpoint` folds it and returns the
    files' new version."""
    with _lock:
        a = _accounts.get(key)
        if a is None or now != a.expected or now[-1] is None:  # no log to fold
            return
        a.expected = checkpoint()
