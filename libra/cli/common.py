"""Options and output helpers every command shares."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

import libra
from traces.display import visible_controls
from traces.store import NotAStore, Store


class _Terminal(Console):
    """A Console that shows the control characters in text it prints instead of sending them.

    Rich strips only a few (BEL, BS, VT, FF, CR) and passes ESC through, so an agent named
    "\\x1b]0;...\\x07" or "\\x1b[8m" would retitle, recolour or hide the operator's terminal.
    """

    def print(self, *objects: Any, **kw: Any) -> None:
        super().print(*(visible_controls(o) if isinstance(o, str) else o for o in objects), **kw)


# Results go to stdout with markup off: they hold names and text from traces, feedback and
# metric sets, which must print as written ("[bold]" in an agent's name is not a style).
# Messages of Libra's own go to stderr with markup, data in them escaped (`fail`).
console = _Terminal(stderr=True)
out = _Terminal(markup=False, highlight=False)


def cell(value: Any) -> Text:
    """A table cell from data: literal text; nothing for None or NaN; whole numbers without '.0'."""
    if isinstance(value, Text):
        return value
    # pandas' NA can only be here if pandas is loaded; importing it to ask would cost every command 0.2 s
    pd = sys.modules.get("pandas")
    if value is None or (pd is not None and value is pd.NA) or (isinstance(value, float) and value != value):
        return Text("")
    if isinstance(value, float) and value.is_integer():
        return Text(str(int(value)))
    return Text(visible_controls(value))


class DataTable(Table):
    """A rich Table whose cells are data (see `cell`); titles given to it are Libra's own, though
    they may quote a name from data, escaped as markup by the caller and its controls shown here."""

    def __init__(self, *headers: Any, title: str | None = None, **kw: Any) -> None:
        super().__init__(*headers, title=None if title is None else visible_controls(title), **kw)

    def add_row(self, *renderables: Any, **kw: Any) -> None:
        super().add_row(*(cell(v) for v in renderables), **kw)

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
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or progress lines; "
                                                                  "results and errors are still printed.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout "
                                                         "(for scripts); messages stay on stderr.")]


def emit_json(value: Any) -> None:
    """One JSON document on stdout: dataclasses as objects, times as ISO text, NaN as null."""
    import dataclasses
    import math

    import orjson

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple | set):
            return [plain(x) for x in v]
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    out.file.write(orjson.dumps(plain(value), default=str).decode() + "\n")
    out.file.flush()


def open_store(db: str | None, *, create: bool = False) -> Store:
    """The store a command works on; only commands that write a new store's first data create one.

    A location that is no store (a trace file given as --db, a typo'd path for a
    reading command) ends the command with one clear line and exit status 2.
    """
    try:
        store = libra.open_store(db, create=create)
    except NotAStore as exc:
        raise fail(str(exc)) from None
    if store.new:
        console.print(f"new store: {escape(store.path)}")
    return store


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error (data in it shown as text, never as markup) and return the exit to raise."""
    console.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code)


def figure(x: float | None) -> str:
    """A measure as people read it: three decimals, a dash where there is none (None or NaN)."""
    return "—" if x is None or x != x else f"{x:.3f}"
