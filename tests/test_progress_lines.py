"""Long commands off a terminal (make demo > log, CI, cron) print progress lines (issue 20 §1)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from libra.cli import progress


def test_lines_say_stage_done_total_rate_and_eta_at_most_every_interval(monkeypatch):
    clock = iter([0.0, 0.2, 0.4, 5.0, 11.0, 12.0, 20.0, 20.5])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    lines: list[str] = []
    lp = progress.LineProgress(every=10, write=lines.append)
    lp("embed", 0, 100)     # t=0: a stage says when it starts
    lp("embed", 10, 100)    # 0.2: too soon
    lp("ground", 0, 4)      # 0.4: another stage starts
    lp("embed", 40, 100)    # 5: too soon
    lp("embed", 55, 100)    # 11: ten seconds on: a line with rate and ETA
    lp("embed", 60, 100)    # 12: too soon
    lp("embed", 100, 100)   # 20: the end of a stage is always said, with the time it took
    lp("embed", 100, 100)   # 20.5: said once
    assert lines[0] == "embed: 0/100  0%" and lines[1] == "ground: 0/4  0%"
    assert re.fullmatch(r"embed: 55/100  55%  5 per s  ETA 0:09", lines[2]), lines[2]
    assert re.fullmatch(r"embed: 100/100  100%  5 per s  took 0:20", lines[3]), lines[3]
    assert len(lines) == 4


def test_bytes_read_as_sizes():
    st = progress._Stage(started=0.0, last=0.0, done=2_500_000, total=10_000_000)
    line = progress.LineProgress(as_bytes=True, write=lambda _: None).line("read", st, 2.0)
    assert line == "read: 2.5 MB/10.0 MB  25%  1.2 MB/s  ETA 0:06"


def test_a_command_whose_output_is_not_a_terminal_prints_lines_not_bars(tmp_path):
    db = tmp_path / "p.duckdb"
    out = subprocess.run([sys.executable, "-m", "libra.cli.main", "demo", "build", "--db", str(db), "--runs", "30"],
                         capture_output=True, text=True, timeout=300, env={**os.environ,
                                                                          "LIBRA_PROGRESS_EVERY": "0"})
    assert out.returncode == 0, out.stderr
    assert "━" not in out.stderr and "\r" not in out.stderr  # no bar redrawn into a log
    graded = subprocess.run([sys.executable, "-m", "libra.cli.main", "pipa", "score", "--db", str(db)],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "LIBRA_PROGRESS_EVERY": "0"})
    assert graded.returncode == 0, graded.stderr
    assert re.search(r"^\S+: \d+/\d+  \d+%", graded.stderr, re.M), graded.stderr


def test_many_files_read_as_one_stage_not_a_line_each(monkeypatch):
    clock = iter(float(t) for t in range(100))
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    lines: list[str] = []
    files = progress.FilesProgress(progress.LineProgress(as_bytes=True, every=10, write=lines.append))
    for i in range(30):  # thirty small files, a second each
        files(f"run_{i}.json", 0, 1000)
        files(f"run_{i}.json", 1000, 1000)
        files(f"run_{i}.json", 1000, 1000)  # said twice: counted once
    files.close()
    assert all(line.startswith("read: ") for line in lines)
    assert len(lines) <= 8  # the first, one per ten seconds, the last: not sixty
    assert lines[-1].startswith("read: 30.0 KB/30.0 KB  100%") and "took" in lines[-1]


def test_a_file_named_in_markup_or_escapes_is_drawn_in_its_bar_as_written(monkeypatch):
    import io

    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=screen, force_terminal=True, width=100, color_system=None))
    name = "[bold red]x[/]\x1b]0;t\x07.jsonl"
    with progress.staged(as_bytes=True) as update:
        update(name, 5, 10)
        update(name, 10, 10)
    drawn = screen.getvalue()
    assert "[bold red]x[/]⟨U+001B⟩]0;t⟨U+0007⟩.jsonl" in drawn, repr(drawn)
