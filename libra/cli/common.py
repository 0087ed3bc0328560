"""Options and output helpers every command shares."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from traces.store import DEFAULT_DB, Store

console = Console(stderr=True)
out = Console()

DbOption = Annotated[
    Path,
    typer.Option(
        "--db",
        envvar="LIBRA_DB",
        help="DuckDB store file (default: $LIBRA_DB, else ./libra.duckdb).",
        show_default=False,
    ),
]


def db_default() -> Path:
    return Path(os.environ.get("LIBRA_DB") or DEFAULT_DB)


# Batch jobs wait longer for the store than the app's interactive requests do.
JOB_LOCK_TIMEOUT = 600.0


def open_store(db: Path | None) -> Store:
    return Store(db or db_default(), lock_timeout=JOB_LOCK_TIMEOUT)
