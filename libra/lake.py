"""A lake's upkeep, composed: what `libra lake maintain` and a scheduled `lake` job run."""

from __future__ import annotations

from datetime import timedelta

from traces.lake import Maintenance, maintain
from traces.store import Store


def maintain_lake(store: Store, *, keep_snapshots: timedelta = timedelta(days=7),
                  orphans_older_than: timedelta = timedelta(hours=1), dry_run: bool = False) -> Maintenance:
    """Expire snapshots past `keep_snapshots`, merge small files, delete old and orphaned files.

    Raises ValueError on a DuckDB file store (it needs none of this).
    """
    return maintain(store, keep_snapshots=keep_snapshots, orphans_older_than=orphans_older_than, dry_run=dry_run)
