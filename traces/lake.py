"""Keeping a DuckLake store small: compaction, snapshot expiry and file cleanup, by DuckLake itself.

Every commit on a lake writes new Parquet files and a snapshot; nothing is ever
deleted by a commit. Over weeks of scheduled ingests and scoring that is many
small files, a catalog with every snapshot since the first, files of expired
snapshots still on disk, and files a killed writer left behind (written, never
committed). `maintain` runs DuckLake's own functions, in the order its CHECKPOINT
does: move rows that small commits kept in the catalog (inlined) to Parquet,
expire snapshots older than the time-travel window, merge adjacent small files, delete files scheduled for deletion, delete orphaned files. Files younger
than `orphans_older_than` are never touched, so a writer committing right now
keeps its files.

The data path must be this lake's own: an orphan is any file under it that this
catalog does not know, so a second lake sharing the folder would lose its files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from traces.locks import LAKE_CATALOG
from traces.ducklake import lake_parts
from traces.store import Store, retrying


@dataclass(frozen=True)
class Maintenance:
    snapshots_before: int
    rows_flushed: int  # of small commits kept in the catalog (inlined), now in Parquet
    snapshots_expired: int
    files_merged: int  # small files rewritten into fewer
    files_written: int
    old_files_deleted: int  # of expired snapshots and merged files
    orphans_deleted: int  # written by writers that never committed
    bytes_before: int | None  # on a local data path; None on object storage
    bytes_after: int | None
    dry_run: bool


def data_bytes(store: Store) -> int | None:
    """Bytes under a lake's local data path (None for object storage)."""
    _, data = lake_parts(store.path)
    if "://" in data:
        return None
    total = 0
    for root, _, files in os.walk(data):
        for f in files:
            try:
                total += (Path(root) / f).stat().st_size
            except OSError:  # deleted while walking, by a cleanup elsewhere
                continue
    return total


def _interval(age: timedelta) -> str:
    return f"{max(0, int(age.total_seconds()))} seconds"


def maintain(store: Store, *, keep_snapshots: timedelta = timedelta(days=7),
             orphans_older_than: timedelta = timedelta(hours=1), dry_run: bool = False) -> Maintenance:
    """Expire, compact and clean a lake; `dry_run` counts what would go and changes nothing.

    `keep_snapshots`: how far back time travel must still work. `orphans_older_than`:
    how old an unknown file must be before it is taken for a dead writer's.
    """
    if not store.lake:
        raise ValueError(f"{store.path} is a DuckDB file, not a lake: it needs no maintenance "
                         "(DuckDB reuses its own free blocks)")
    before = data_bytes(store)
    # Catalog and ages are Libra's own values, never input: no parameters exist for CALL arguments.
    cat = f"'{LAKE_CATALOG}'"
    dry = "true" if dry_run else "false"
    keep, orphan_age = _interval(keep_snapshots), _interval(orphans_older_than)

    def count(sql: str) -> int:
        def go() -> int:
            with store.connection() as con:
                return int(con.execute(sql).fetchall()[0][0] or 0)  # fetched whole: the call commits at its end
        return retrying(go)

    snapshots = count(f"SELECT count(*) FROM ducklake_snapshots({cat})")  # noqa: S608
    flushed = 0
    if not dry_run:  # neither flushing nor merging has a dry run
        flushed = count(f"SELECT coalesce(sum(rows_flushed), 0) FROM ducklake_flush_inlined_data({cat})")  # noqa: S608
    expired = count(f"SELECT count(*) FROM ducklake_expire_snapshots({cat}, dry_run => {dry}, "  # noqa: S608
                    f"older_than => now() - INTERVAL '{keep}')")
    merged = written = 0
    if not dry_run:
        def merge() -> tuple[int, int]:
            with store.connection() as con:
                row = con.execute(f"SELECT coalesce(sum(files_processed), 0), coalesce(sum(files_created), 0) "  # noqa: S608
                                  f"FROM ducklake_merge_adjacent_files({cat})").fetchall()[0]
                return int(row[0]), int(row[1])
        merged, written = retrying(merge)
    # Files of expired snapshots and merged files are scheduled for deletion, not deleted, in
    # case a reader still scans them: delete those scheduled before the orphan age too.
    old = count(f"SELECT count(*) FROM ducklake_cleanup_old_files({cat}, dry_run => {dry}, "  # noqa: S608
                f"older_than => now() - INTERVAL '{orphan_age}')")
    orphans = count(f"SELECT count(*) FROM ducklake_delete_orphaned_files({cat}, dry_run => {dry}, "  # noqa: S608
                    f"older_than => now() - INTERVAL '{orphan_age}')")
    return Maintenance(snapshots, flushed, expired, merged, written, old, orphans, before, data_bytes(store), dry_run)
