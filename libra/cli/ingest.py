"""`libra ingest`: read agent logs into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from libra.cli.common import DbOption, console, open_store, out
from traces import importers
from traces.ingest import ingest


INDEX_AUTOMATICALLY_UP_TO = 50_000  # runs; beyond that rebuilding is left to `libra index`


def ingest_cmd(
    paths: Annotated[list[str] | None, typer.Argument(help="Files, folders, globs, or - for stdin.")] = None,
    db: DbOption = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f",
                                            help="Skip detection and read every input as this format "
                                                 "(see `libra formats`).")] = None,
    batch_steps: Annotated[int, typer.Option(help="Steps per write transaction (above a DuckDB row group, 122,880, rows go straight to the file).")] = 130_000,
    workers: Annotated[int | None, typer.Option(
        help="Processes parsing one big file at once (generic JSONL and OTLP JSON above 8 MB); "
             "default: the cores, at most 4, or LIBRA_INGEST_WORKERS. 1 parses in this process.",
        min=1)] = None,
    index: Annotated[bool, typer.Option(
        help="Rebuild the full-text search index afterwards (done automatically up to "
             f"{INDEX_AUTOMATICALLY_UP_TO:,} runs; `libra index` does it later).")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    watch: Annotated[Path | None, typer.Option(help="Follow a directory of OTLP JSON files as the "
                                                    "OpenTelemetry Collector's file exporter writes them "
                                                    "(rotation included) until interrupted.")] = None,
    pattern: Annotated[str, typer.Option(help="With --watch: file names to follow.")] = "*.json*",
    interval: Annotated[float, typer.Option(help="With --watch: seconds between polls.")] = 2.0,
    settle: Annotated[float, typer.Option(help="With --watch: a trace is written once its root span is in "
                                               "and no span came for this many seconds.")] = 5.0,
    once: Annotated[bool, typer.Option(help="With --watch: read what is there, write every trace, stop.")]
    = False,
) -> None:
    """Ingest agent traces, detecting each file's format.

    Every run lands whole or not at all; records that cannot be read are kept in
    the quarantine with file, line, field and reason (see `libra quarantine`).
    Re-ingesting the same data adds nothing. Exit status 1 means some records
    were quarantined.
    """
    if watch is not None:
        _watch(open_store(db), watch, pattern, interval, settle, once, quiet)
        return
    if not paths:
        raise typer.BadParameter("give files to ingest, or --watch DIR", param_hint="PATHS")
    if fmt:
        try:
            importers.get(fmt)
        except KeyError as exc:
            raise typer.BadParameter(str(exc.args[0]), param_hint="--format") from None
    store = open_store(db)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                        TimeRemainingColumn(), console=console, disable=quiet, transient=True)
    tasks: dict[str, int] = {}

    def on_progress(name: str, done: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(Path(name).name[-40:], total=total)
        progress.update(tasks[name], completed=done)

    def on_file(source, fmt_name) -> None:
        if fmt_name is None and not quiet:
            console.print(f"[yellow]skipped[/] {source.name}: not a recognised trace format")

    try:
        with progress:
            summary = ingest(store, paths, fmt=fmt, batch_steps=batch_steps, workers=workers,
                             progress=None if quiet else on_progress, on_file=on_file)
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    t = Table(title="ingest summary", show_header=False)
    for k, v in (("files", summary.files), ("records read", summary.records),
                 ("runs added", summary.runs_added), ("runs updated", summary.runs_updated),
                 ("duplicates skipped", summary.duplicates), ("steps", summary.steps),
                 ("feedback", summary.feedback), ("quarantined", summary.quarantined)):
        t.add_row(k, f"{v:,}")
    if summary.formats:
        t.add_row("formats", ", ".join(f"{k} ({v})" for k, v in sorted(summary.formats.items())))
    out.print(t)
    if summary.reasons:
        r = Table(title="quarantined, by reason")
        r.add_column("reason")
        r.add_column("records", justify="right")
        for reason, n in sorted(summary.reasons.items(), key=lambda kv: -kv[1])[:20]:
            r.add_row(reason, str(n))
        out.print(r)
        console.print("see them with: libra quarantine")
    if index and (summary.runs_added or summary.runs_updated) and not store.lake:
        from traces import search

        runs = store.scalar("SELECT count(*) FROM runs")
        if runs <= INDEX_AUTOMATICALLY_UP_TO:
            with store.transaction() as con:
                search.rebuild_search_index(con)
        else:
            console.print("run `libra index` to bring full-text search up to date")
    from traces.annotation import feedback

    feedback.flush(store, timeout=5)  # apply any saves the app journalled while we held the store
    if summary.quarantined:
        raise typer.Exit(1)


def _watch(store, directory: Path, pattern: str, interval: float, settle: float, once: bool, quiet: bool) -> None:
    import time

    from traces.annotation import feedback
    from traces.ingest.watch import Watcher

    if not directory.is_dir():
        console.print(f"[red]error:[/] {directory} is not a directory")
        raise typer.Exit(2)
    w = Watcher(store, directory, pattern=pattern, settle=settle)
    if not quiet:
        console.print(f"watching {directory}/{pattern} every {interval:g}s (Ctrl-C to stop)")
    try:
        while True:
            got = w.poll()
            if not quiet and (got.runs_added or got.runs_updated or got.quarantined):
                console.print(f"{got.runs_added} runs added, {got.runs_updated} updated, {got.steps} steps, "
                              f"{got.quarantined} quarantined; {w.open_traces} traces still open")
            feedback.flush(store, timeout=1)
            if once:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    total = w.close()
    out.print(f"watch: {total.runs_added} runs added, {total.runs_updated} updated, {total.steps} steps, "
              f"{total.quarantined} quarantined")
    if total.quarantined:
        raise typer.Exit(1)
