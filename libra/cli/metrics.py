"""`libra metrics ...`: list, show, export, import and approve metric sets; watch and update them."""

from __future__ import annotations

import getpass
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from libra.cli.common import (
    BackendOption, DataTable, DbOption, JsonOption, console, emit_json, fail, figure, open_store, out,
)
from traces.display import visible_controls


metrics_app = typer.Typer(help="Metric sets: list, show, export, import, approve; coverage of new feedback and updates.", no_args_is_help=True)


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
    out.print(Text.assemble((visible_controls(ms.name), "bold"), f" ({ms.set_id} v{ms.version}, {ms.status})"))
    for m in ms.metrics:
        out.print(Text.assemble("\n", (visible_controls(m.name), "bold"), "  ", (visible_controls(m.metric_id), "dim")))
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


@metrics_app.command("coverage")
def metrics_coverage(
    db: DbOption = None,
    set_id: Annotated[str | None, typer.Option("--set", help="Set (default: the newest approved induced set).")]
    = None,
    version: Annotated[int | None, typer.Option(help="Version (default: the newest).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Remarks written after this (default: after the "
                                                        "newest remark the set was made from).")] = None,
    below: Annotated[float | None, typer.Option(help="Exit status 1 when coverage of new feedback is below this.",
                                                min=0, max=1)] = None,
    backend: BackendOption = "auto",
    as_json: JsonOption = False,
) -> None:
    """How much of the feedback written since the set was made the set covers, week by week.

    The coverage induction reports, on new remarks only; its weekly line is on the
    Dashboards page once a scheduled score job has measured it.
    """
    from libra.living import new_feedback_coverage

    try:
        cov = new_feedback_coverage(open_store(db), set_id, version, since=since, backend=backend)
    except (LookupError, KeyError) as exc:
        raise fail(str(exc.args[0] if exc.args else exc)) from None
    if as_json:
        emit_json({"set_id": cov.set_id, "version": cov.version, "since": cov.since, "coverage": cov.coverage,
                   "remarks": cov.evaluation.aspects, "covered": cov.evaluation.aspects_matched,
                   "uncovered_because": {k: v for k, v in cov.reasons.items() if k != "matched"},
                   "weekly": cov.weekly.to_dict("records")})
    else:
        t = DataTable(title=f"{cov.set_id} v{cov.version}: coverage of feedback since {cov.since or 'the start'}")
        for c in ("week", "remarks", "covered", "coverage", "95% interval"):
            t.add_column(c)
        for r in cov.weekly.itertuples(index=False):
            t.add_row(f"{r.week:%Y-%m-%d}", r.remarks, r.covered, figure(r.coverage), f"[{figure(r.lo)}, {figure(r.hi)}]")
        out.print(t)
        if not cov.evaluation.aspects:
            out.print("no remark written since the set was made: nothing new to cover yet")
        else:
            out.print(f"{cov.evaluation.aspects_matched} of {cov.evaluation.aspects} new remarks covered: "
                      f"{figure(cov.coverage)}")
        why = {k: v for k, v in cov.reasons.items() if k != "matched"}
        if why:
            out.print("uncovered: " + ", ".join(f"{v} {k}" for k, v in sorted(why.items(), key=lambda x: -x[1])))
    if below is not None and cov.evaluation.aspects and cov.coverage < below:
        raise typer.Exit(1)


@metrics_app.command("update")
def metrics_update(
    db: DbOption = None,
    set_id: Annotated[str | None, typer.Option("--set", help="Set (default: the newest approved induced set).")]
    = None,
    approve_as: Annotated[str | None, typer.Option("--approve", help="Approve the proposal as this admin "
                                                                     "(password from $LIBRA_PASSWORD, or asked).")]
    = None,
    accept: Annotated[str | None, typer.Option(help="With --approve: only these changes (numbers as listed, "
                                                    "comma-separated).")] = None,
    backend: BackendOption = "auto",
    as_json: JsonOption = False,
) -> None:
    """Propose the set's next version from new feedback: metrics to add, merge and retire, with the
    remarks behind each and its effect on coverage and redundancy; --approve saves and approves it
    (only changed metrics are re-scored)."""
    from libra.approval import ApprovalRefused
    from libra.living import approve_update, propose_update

    store = open_store(db)
    try:
        p = propose_update(store, set_id, backend=backend)
    except (LookupError, KeyError) as exc:
        raise fail(str(exc.args[0] if exc.args else exc)) from None
    if as_json:
        emit_json({"set_id": p.base.set_id, "base_version": p.base.version,
                   "coverage_before": p.before.coverage, "coverage_after": p.after.coverage,
                   "redundancy_before": p.before.redundancy, "redundancy_after": p.after.redundancy,
                   "changes": [{"n": i, "action": c.action, "title": c.title, "metric_ids": c.metric_ids,
                                "metric": c.metric, "coverage_delta": c.coverage_delta,
                                "redundancy_delta": c.redundancy_delta, "remarks": c.remarks}
                               for i, c in enumerate(p.changes)]})
    else:
        out.print(f"{p.base.set_id} v{p.base.version}: {len(p.changes)} changes proposed from "
                  f"{p.before.aspects} new remarks")
        for i, c in enumerate(p.changes):
            out.print(f"[{i}] {c.title}: coverage {c.coverage_delta:+.3f}, redundancy {c.redundancy_delta:+.3f}")
            for r in c.remarks[:3]:
                out.print(f"      “{r}”")
        out.print(f"all changes: coverage of new feedback {figure(p.before.coverage)} → {figure(p.after.coverage)}, "
                  f"redundancy {figure(p.before.redundancy)} → {figure(p.after.redundancy)}")
    if approve_as is None:
        return
    try:
        chosen = [int(x) for x in accept.split(",")] if accept else None
    except ValueError:
        raise fail("--accept takes change numbers, e.g. 0,2") from None
    password = os.environ.get("LIBRA_PASSWORD") or getpass.getpass(f"password for {approve_as}: ")
    try:
        saved = approve_update(store, p, approve_as, password=password, accepted=chosen, backend=backend)
    except ApprovalRefused as exc:
        raise fail(str(exc), 1) from None
    console.print(f"{saved.set_id} v{saved.version} saved and approved by {approve_as}")
