"""`libra ingest`: read agent logs into the store."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from libra.cli.progress import commits_logged, staged
from libra.cli.common import DataTable, DbOption, JsonOption, console, emit_json, fail, open_store, out, QuietOption
from libra.defaults import INDEX_AUTOMATICALLY_UP_TO
from traces import importers
from traces.importers.base import Source
from traces.importers.mapped import MappingError
from traces.model import IngestSummary
from traces.store import Store


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
        help="Rebuild the full-text search index afterwards on stores up to "
             f"{INDEX_AUTOMATICALLY_UP_TO:,} runs; beyond, `libra index` does it, and search matches "
             "runs the index lacks by their words meanwhile.")] = True,
    quiet: QuietOption = False,
    watch: Annotated[Path | None, typer.Option(help="Follow a directory of OTLP JSON files as the "
                                                    "OpenTelemetry Collector's file exporter writes them "
                                                    "(rotation included) until interrupted.")] = None,
    pattern: Annotated[str, typer.Option(help="With --watch: file names to follow.")] = "*.json*",
    interval: Annotated[float, typer.Option(help="With --watch: seconds between polls.")] = 2.0,
    settle: Annotated[float, typer.Option(help="With --watch: a trace is written once its root span is in "
                                               "and no span came for this many seconds.")] = 5.0,
    once: Annotated[bool, typer.Option(help="With --watch: read what is there, write every trace, stop.")]
    = False,
    mapping: Annotated[Path | None, typer.Option(
        "--map", help="A YAML mapping saying where runs, messages, roles, tool calls, rewards and labels "
                      "live in a JSON/JSONL file no importer reads (JMESPath; see the README).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest agent traces, detecting each file's format.

    Every run lands whole or not at all; records that cannot be read are kept in
    the quarantine with file, line, field and reason (see `libra quarantine`).
    Re-ingesting the same data adds nothing. Exit status 1 means some records
    were quarantined.
    """
    from traces.ingest import heap

    heap.lean()  # this process is an ingest's writer from here on
    if watch is not None:
        _watch(open_store(db, create=True), watch, pattern, interval, settle, once, quiet)
        return
    if not paths:
        raise typer.BadParameter("give files to ingest, or --watch DIR", param_hint="PATHS")
    if fmt:
        try:
            importers.get(fmt)
        except KeyError as exc:
            raise typer.BadParameter(str(exc.args[0]), param_hint="--format") from None
    store = open_store(db, create=True)
    def on_file(source: Source, fmt_name: str | None) -> None:
        if fmt_name is None and not quiet:
            console.print(f"[yellow]skipped[/] {escape(source.name)}: not a recognised trace format")

    from libra.ingesting import ingest

    try:
        with staged(quiet or as_json, as_bytes=True) as on_progress, commits_logged(quiet or as_json):
            done = ingest(store, paths, fmt=fmt, batch_steps=batch_steps, workers=workers, index=index,
                          progress=None if quiet else on_progress, on_file=on_file, mapping=mapping)
    except (FileNotFoundError, MappingError) as exc:
        raise fail(str(exc)) from None
    summary = done.summary
    if as_json:
        emit_json({**dataclasses.asdict(summary), "index_pending": done.index_pending})
        raise typer.Exit(1 if summary.quarantined else 0)
    t = DataTable(title="ingest summary", show_header=False)
    for k, v in (("files", summary.files), ("records read", summary.records),
                 ("runs added", summary.runs_added), ("runs updated", summary.runs_updated),
                 ("duplicates skipped", summary.duplicates), ("steps", summary.steps),
                 ("feedback", summary.feedback), ("quarantined", summary.quarantined)):
        t.add_row(k, f"{v:,}")
    if summary.formats:
        t.add_row("formats", ", ".join(f"{k} ({v})" for k, v in sorted(summary.formats.items())))
    out.print(t)
    _per_file(summary)
    if summary.reasons:
        r = DataTable(title="quarantined, by reason")
        r.add_column("reason")
        r.add_column("records", justify="right")
        for reason, n in sorted(summary.reasons.items(), key=lambda kv: -kv[1])[:20]:
            r.add_row(reason, str(n))
        out.print(r)
        console.print("see them with: libra quarantine")
    if done.index_pending:
        console.print("search matches the new runs by their words until `libra index` adds them to the index")
    if summary.quarantined:
        raise typer.Exit(1)


def _per_file(summary: IngestSummary) -> None:
    """Each input's account (records read = stored + quarantined); with many, those worth a look."""
    rows = summary.per_file
    if len(rows) > 20:
        rows = [t for t in rows if t.quarantined or (t.encoding or "utf-8") not in ("utf-8", "zip")]
    if not rows or len(summary.per_file) == 1 and not rows[0].quarantined and rows[0].encoding in ("utf-8", None):
        return
    t = DataTable("file", "format", "encoding", "read", "stored", "quarantined", title="per file")
    for f in rows:
        t.add_row(f.source, f.format or "-", f.encoding or "-", f"{f.records:,}", f"{f.stored:,}", f"{f.quarantined:,}")
    out.print(t)
    if len(rows) < len(summary.per_file):
        out.print(f"{len(summary.per_file) - len(rows)} more files read cleanly as UTF-8")


def _watch(store: Store, directory: Path, pattern: str, interval: float, settle: float, once: bool, quiet: bool) -> None:
    from libra.ingesting import watch

    def on_poll(got: IngestSummary, still_open: int) -> None:
        if not quiet and (got.runs_added or got.runs_updated or got.quarantined):
            console.print(f"{got.runs_added} runs added, {got.runs_updated} updated, {got.steps} steps, "
                          f"{got.quarantined} quarantined; {still_open} traces still open")

    if not quiet and directory.is_dir():
        console.print(f"watching {directory}/{pattern} every {interval:g}s (Ctrl-C to stop)", markup=False)
    try:
        total = watch(store, directory, pattern=pattern, interval=interval, settle=settle, once=once,
                      on_poll=on_poll)
    except NotADirectoryError as exc:
        raise fail(str(exc)) from None
    out.print(f"watch: {total.runs_added} runs added, {total.runs_updated} updated, {total.steps} steps, "
              f"{total.quarantined} quarantined")
    if total.quarantined:
        raise typer.Exit(1)
