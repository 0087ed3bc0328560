"""Options and output helpers every command shares."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from traces.store import Store, default_db_path

console = Console(stderr=True)
out = Console()

DbOption = Annotated[
    # Text, not a Path: a store may be a lake setting, and a Path would fold "s3://" into "s3:/".
    str | None,
    typer.Option(
        "--db",
        envvar=["LIBRA_STORE", "LIBRA_DB"],
        help="The store: a DuckDB file, or ducklake:postgres:CONNINFO data=PATH for a shared lake "
             "(default: $LIBRA_STORE, else $LIBRA_DB, else ./libra.duckdb).",
        show_default=False,
    ),
]


# Batch jobs wait longer for the store than the app's interactive requests do.
JOB_LOCK_TIMEOUT = 600.0


def open_store(db: str | None) -> Store:
    return Store(db or default_db_path(), lock_timeout=JOB_LOCK_TIMEOUT)
