"""Progress for long jobs: bars on a terminal, dated lines anywhere else.

Under `make demo > log`, cron or CI a bar prints nothing until it is done, so
off a terminal each stage prints a line when it starts, every
`LIBRA_PROGRESS_EVERY` seconds (10 by default) while it runs, and when it ends:
stage, done/total, rate and time left. The lines go to stderr and to the
`libra.progress` logger, so a log file configured by the caller gets them too.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.markup import escape
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from libra.cli.common import console
from traces.display import visible_controls

log = logging.getLogger("libra.progress")
Update = Callable[[str, int, int], None]


def _every() -> float:
    try:
        return max(0.0, float(os.environ.get("LIBRA_PROGRESS_EVERY", "10")))
    except ValueError:
        return 10.0


def human_size(n: float, as_bytes: bool) -> str:
    if not as_bytes:
        return f"{n:,.0f}"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} GB"


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@dataclass
class _Stage:
    started: float
    last: float
    done: int = 0
    total: int = 0
    finished: bool = False


@dataclass
class LineProgress:
    """update(stage, done, total) printing a line at most every `every` seconds per stage."""

    as_bytes: bool = False
    every: float = field(default_factory=_every)
    write: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))
    stages: dict[str, _Stage] = field(default_factory=dict)

    def line(self, stage: str, st: _Stage, now: float) -> str:
        spent = now - st.started
        rate = st.done / spent if spent > 0 else 0.0
        unit = "/s" if self.as_bytes else " per s"
        parts = [f"{stage}: {human_size(st.done, self.as_bytes)}/{human_size(st.total, self.as_bytes)}"]
        if st.total:
            parts.append(f"{100 * st.done / st.total:.0f}%")
        if spent >= 0.5 and st.done:
            parts.append(f"{human_size(rate, self.as_bytes)}{unit}")
            if st.finished:
                parts.append(f"took {_clock(spent)}")
            elif st.total > st.done:
                parts.append(f"ETA {_clock((st.total - st.done) / rate)}")
        return "  ".join(parts)

    def __call__(self, stage: str, done: int, total: int, final: bool | None = None) -> None:
        """`final` says whether the stage is over; by default, when done reaches total."""
        now = time.monotonic()
        st = self.stages.get(stage)
        fresh = st is None
        if st is None:
            st = self.stages[stage] = _Stage(started=now, last=now)
        if st.finished:
            return
        st.done, st.total = done, total
        st.finished = (total > 0 and done >= total) if final is None else final
        if fresh or st.finished or now - st.last >= self.every:
            st.last = now
            text = self.line(stage, st, now)
            self.write(text)
            log.info(text)


@dataclass
class FilesProgress:
    """Many files' byte progress as one "read" stage (a line per file would be 100,000 lines)."""

    lines: LineProgress
    open_files: dict[str, tuple[int, int]] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    done_bytes: int = 0
    files: int = 0

    def __call__(self, name: str, done: int, total: int) -> None:
        if name in self.finished:  # a reader may say "all read" more than once
            return
        if total > 0 and done >= total:
            self.open_files.pop(name, None)
            self.finished.add(name)
            self.done_bytes += total
            self.files += 1
        else:
            self.open_files[name] = (done, total)
        self._say(final=False)

    def _say(self, final: bool) -> None:
        done = self.done_bytes + sum(d for d, _ in self.open_files.values())
        total = self.done_bytes + sum(t for _, t in self.open_files.values())
        self.lines("read", done, total, final=final)  # the summary after it counts the files

    def close(self) -> None:
        if self.files or self.open_files:
            self._say(final=True)


def _bars(as_bytes: bool) -> Progress:
    if as_bytes:
        return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                        console=console, transient=True)
    return Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


@contextmanager
def staged(disable: bool = False, *, as_bytes: bool = False) -> Iterator[Update]:
    """Yields progress(stage, done, total): a bar per stage on a terminal, lines elsewhere."""
    if disable:
        yield lambda stage, done, total: None
        return
    if not console.is_terminal:
        if not as_bytes:
            yield LineProgress()
            return
        files = FilesProgress(LineProgress(as_bytes=True))
        yield files
        files.close()
        return
    bars = _bars(as_bytes)
    tasks: dict[str, TaskID] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            # the stage is a file's name when reading: the bar's text column reads markup
            tasks[stage] = bars.add_task(escape(visible_controls(stage[-40:])), total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update


@contextmanager
def commits_logged(disable: bool = False, logger: str = "libra.ingest") -> Iterator[None]:
    """Off a terminal, what `logger` says at INFO (each committed batch) goes to stderr as well."""
    target = logging.getLogger(logger)
    if disable or console.is_terminal or target.isEnabledFor(logging.INFO) and target.handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = target.level
    target.addHandler(handler)
    target.setLevel(logging.INFO)
    try:
        yield
    finally:
        target.removeHandler(handler)
        target.setLevel(level)
