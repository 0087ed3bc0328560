"""`libra metrics ...`: list, show, export, import and approve metric sets."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from libra.cli.common import DataTable, DbOption, fail, open_store, out


metrics_app = typer.Typer(help="Metric sets: list, show, export, import, approve.", no_args_is_help=True)


@metrics_app.command("list")
def metrics_list(db: DbOption = None) -> None:
    """Every metric set and version with its status."""
    from metrics import sets

    df = sets.list_sets(open_store(db))
    if df.empty:
        out.print("no metric sets yet; create one with `libra induce` or `libra metrics import`")
        return
    t = DataTable("set", "version", "status", "metrics", "created", "approved by", "name")
    for col in t.columns:
        col.overflow = "fold"
    for r in df.itertuples(index=False):
        t.add_row(r.set_id, str(r.version), r.status, str(r.metrics), f"{r.created_at:%Y-%m-%d %H:%M}",
                  r.approved_by or "", r.name)
    out.print(t)


@metrics_app.command("show")
def metrics_show(set_id: str, db: DbOption = None,
                 version: Annotated[int | None, typer.Option(help="Default: the newest.")] = None) -> None:
    """A metric set's definitions, examples and figures."""
    from metrics import sets

    try:
        ms = sets.load(open_store(db), set_id, version)
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    out.print(Text.assemble((ms.name, "bold"), f" ({ms.set_id} v{ms.version}, {ms.status})"))
    for m in ms.metrics:
        out.print(Text.assemble("\n", (m.name, "bold"), "  ", (m.metric_id, "dim")))
        out.print(m.explanation)
        for label, exs in (("+", m.good), ("-", m.bad)):
            for e in exs[:3]:
                out.print(f"  {label} {e.text}")
    prov = ms.provenance
    if "heldout" in prov:
        out.print(f"\nheld-out coverage {prov['heldout']['coverage']:.3f}, redundancy {prov['heldout']['redundancy']:.3f}")


@metrics_app.command("export")
def metrics_export(set_id: str, path: Path, db: DbOption = None,
                   version: Annotated[int | None, typer.Option()] = None) -> None:
    """Write a metric set to YAML."""
    from metrics import sets

    path.write_text(sets.to_yaml(sets.load(open_store(db), set_id, version)))
    out.print(f"-> {path}")


@metrics_app.command("import")
def metrics_import(path: Path, db: DbOption = None,
                   by: Annotated[str | None, typer.Option(help="Who imports it.")] = None) -> None:
    """Read a metric set from YAML as a new version (a draft)."""
    from metrics import sets

    try:
        ms = sets.from_yaml(path.read_text(), str(path))
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    ms = sets.save(open_store(db, create=True), ms, backend="import", created_by=by, note=f"imported from {path.name}")
    out.print(f"imported {ms.set_id} v{ms.version} ({len(ms.metrics)} metrics)")


@metrics_app.command("approve")
def metrics_approve(set_id: str, version: int,
                    by: Annotated[str, typer.Option(help="The admin account that approves.")],
                    db: DbOption = None) -> None:
    """Approve a version as an admin: `libra score` and scheduled jobs apply approved sets.

    The admin's password is read from $LIBRA_PASSWORD, or asked for.
    """
    from libra.approval import ApprovalRefused, approve

    password = os.environ.get("LIBRA_PASSWORD") or getpass.getpass(f"password for {by}: ")
    try:
        approve(open_store(db), set_id, version, by, password)
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    except ApprovalRefused as exc:
        raise fail(str(exc), 1) from None
    out.print(f"{set_id} v{version} approved by {by}")
