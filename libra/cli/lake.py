"""`libra lake`: upkeep of a DuckLake store."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Annotated

import typer

from libra.cli.common import DbOption, JsonOption, emit_json, fail, open_store, out
from libra.cli.progress import human_size

lake_app = typer.Typer(help="Upkeep of a DuckLake store (compaction, snapshot expiry, file cleanup).",
                       no_args_is_help=True)


def _size(n: int | None) -> str:
    return "on object storage" if n is None else human_size(n, as_bytes=True)


@lake_app.command("maintain")
def maintain_cmd(
    db: DbOption = None,
    keep_days: Annotated[float, typer.Option("--keep-days", min=0,
                                             help="Snapshots younger than this stay (time travel).")] = 7.0,
    orphans_older_than: Annotated[float, typer.Option(
        "--orphans-older-than", min=0, help="Minutes: an unknown file younger than this may be a writer's "
                                            "about to commit, and is kept.")] = 60.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; change nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Expire old snapshots, merge small files, delete files no snapshot needs and files killed writers left.

    DuckLake's own functions, in the order its CHECKPOINT runs them. The data path must be
    this lake's alone: any file there that the catalog does not know is taken for an orphan.
    Run it from a schedule (action: lake) beside the ingests.
    """
    from libra.lake import maintain_lake

    store = open_store(db, create=False)
    try:
        m = maintain_lake(store, keep_snapshots=timedelta(days=keep_days),
                          orphans_older_than=timedelta(minutes=orphans_older_than), dry_run=dry_run)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if as_json:
        emit_json(asdict(m))
        return
    would = "would be " if dry_run else ""
    out.print(f"snapshots: {m.snapshots_before:,}, {m.snapshots_expired:,} {would}expired")
    if not dry_run:
        out.print(f"rows moved from the catalog to Parquet: {m.rows_flushed:,}")
        out.print(f"small files merged: {m.files_merged:,} into {m.files_written:,}")
    out.print(f"files of expired snapshots and merges {would}deleted: {m.old_files_deleted:,}")
    out.print(f"orphaned files (written, never committed) {would}deleted: {m.orphans_deleted:,}")
    out.print(f"data: {_size(m.bytes_before)} before, {_size(m.bytes_after)} after")
