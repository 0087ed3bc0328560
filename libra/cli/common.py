"""Options and output helpers every command shares."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

import libra
from traces.store import Store

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
BackendOption = Annotated[str, typer.Option("--backend", help="auto (LLM with ANTHROPIC_API_KEY, else offline), "
                                                             "llm or offline.")]
CostOption = Annotated[float | None, typer.Option("--max-cost", help="Stop cleanly before spending more (USD).")]


def open_store(db: str | None) -> Store:
    return libra.open_store(db)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error (data in it shown as text, never as markup) and return the exit to raise."""
    console.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code)


def figure(x: float | None) -> str:
    """A measure as people read it: three decimals, a dash where there is none (None or NaN)."""
    return "—" if x is None or x != x else f"{x:.3f}"
