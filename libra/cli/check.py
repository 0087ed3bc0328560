"""`libra check`: a store's invariants, and repairs that need no guess; `libra jobs`: jobs as they are."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from libra.cli.common import DataTable, DbOption, JsonOption, emit_json, open_store, out


def check_cmd(
    db: DbOption = None,
    repair: Annotated[bool, typer.Option("--repair", help="Fix what can be fixed without guessing, and say what.")]
    = False,
    as_json: JsonOption = False,
) -> None:
    """Check a store: runs and their steps, notes, verdicts, jobs and migrations.

    Exit 0 when the store is clean (after repairs, with --repair), 1 when problems remain.
    """
    from libra.checking import check

    report = check(open_store(db), repair=repair)
    if as_json:
        emit_json({"ok": report.ok, "findings": report.findings, "repaired": report.repaired})
        raise typer.Exit(0 if report.ok else 1)
    table = DataTable("check", "found", "state", title="libra check")
    repaired = {f.name for f in report.repaired}
    for f in report.findings:
        state = "ok" if not f.count else (f.repair or "repairable: run with --repair") if f.repair else \
            "kept: " + f.advice if f.advice else "needs a person"
        table.add_row(f.name, f.count, state)
    for f in report.repaired:
        table.add_row(f.name, f.count, "repaired: " + (f.repair or ""))
    out.print(table)
    for f in [*report.repaired, *report.problems]:
        for ex in f.examples:
            out.print(f"  {f.name}: {ex}")
    if report.ok:
        out.print("store is consistent" + (f" ({len(repaired)} kinds of problem repaired)" if repaired else ""))
        return
    out.print(f"{len(report.problems)} kinds of problem remain")
    raise typer.Exit(1)


def jobs_cmd(
    db: DbOption = None,
    limit: Annotated[int, typer.Option(help="How many of the newest jobs.", min=1)] = 20,
) -> None:
    """Scoring jobs, newest first: a job whose process died shows as abandoned (`libra score` resumes it)."""
    from metrics.jobs.ledger import jobs

    df = jobs(open_store(db), limit)
    table = DataTable("kind", "status", "done", "failed", "of", "cost $", "started", "last seen", title="jobs")
    table.add_column("job", no_wrap=True)  # last, and whole: it is what `libra costs --by job` and logs name

    def when(t: Any) -> str:
        return "" if t is None or t != t else f"{t:%Y-%m-%d %H:%M}"
    for r in df.itertuples():
        table.add_row(r.kind, r.status, r.items_done, r.items_failed, r.items_total,
                      f"{r.cost_usd:.4f}", when(r.started_at), when(r.heartbeat_at), r.job_id)
    out.print(table)
