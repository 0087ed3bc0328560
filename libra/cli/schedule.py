"""`libra schedule`: scheduled jobs over the store, and their history."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from libra.cli.common import DataTable, DbOption, console, fail, open_store, out

if TYPE_CHECKING:
    from metrics.jobs.schedule import ScheduleConfig

schedule_app = typer.Typer(help="Run ingest and scoring jobs on cron schedules, and see their history.",
                           no_args_is_help=True)

ALERT_EXIT = 3  # exit status when an alert fires: distinct from failures (1) and usage errors (2)


def load_schedule(path: Path) -> ScheduleConfig:
    from metrics.jobs.schedule import load_config

    try:
        return load_config(path)
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from None


def _report(r: dict[str, Any]) -> None:
    line = (f"[{r['run_no']}] {r['job']}: {r['status']}, {r['runs_ingested']} ingested, {r['runs_scored']} scored, "
            f"${r['cost_usd']:.4f}")
    out.print(line)
    for e in r["errors"]:
        console.print(f"  [red]error:[/] {escape(str(e))}")
    for a in r["alerts"]:
        console.print(f"  [yellow]ALERT[/] {escape(str(a))}")


@schedule_app.command("run")
def schedule_run(
    config: Annotated[Path, typer.Argument(help="Schedule config (YAML): jobs with cron expressions, alert rules.")],
    db: DbOption = None,
    once: Annotated[bool, typer.Option(help="Run every job (or --job) once now and exit, for cron or systemd "
                                            "timers.")] = False,
    job: Annotated[list[str] | None, typer.Option(help="With --once: only these jobs.")] = None,
) -> None:
    """Run the config's jobs on their schedules in this process (or once, with --once).

    Every job run is recorded (see `libra schedule history`). With --once the
    exit status is 1 when a job failed and 3 when an alert is firing.
    """
    from metrics.jobs.schedule import run_job, serve

    cfg = load_schedule(config)
    store = open_store(db, create=True)
    from libra.actions import make_actions

    actions = make_actions()
    if once:
        chosen = [j for j in cfg.jobs if not job or j.name in job]
        if job and len(chosen) != len(set(job)):
            raise fail(f"unknown job among {job}; known: {[j.name for j in cfg.jobs]}")
        results = [run_job(store, j, actions, cfg.alerts) for j in chosen]
        for r in results:
            _report(r)
        if any(r["errors"] for r in results):
            raise typer.Exit(1)
        if any(r["alerts"] for r in results):
            raise typer.Exit(ALERT_EXIT)
        return
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    console.print(f"scheduler: {len(cfg.jobs)} jobs, {len(cfg.alerts)} alert rules (Ctrl-C or SIGTERM to stop)")
    try:
        serve(store, cfg, actions, on_result=_report, stop=lambda: bool(stopping))
    except KeyboardInterrupt:
        pass


@schedule_app.command("history")
def schedule_history(db: DbOption = None, limit: Annotated[int, typer.Option(help="Rows.")] = 30) -> None:
    """Recorded job runs, newest first."""
    from metrics.jobs.schedule import history

    df = history(open_store(db), limit)
    t = DataTable("#", "job", "action", "started", "seconds", "status", "ingested", "scored", "cost", "alerts", "errors")
    for r in df.itertuples(index=False):
        secs = "" if r.ended_at is None or r.ended_at != r.ended_at else f"{(r.ended_at - r.started_at).total_seconds():.1f}"
        t.add_row(str(r.run_no), r.job, r.action, f"{r.started_at:%Y-%m-%d %H:%M:%S}", secs, r.status,
                  str(r.runs_ingested), str(r.runs_scored), f"${r.cost_usd:.4f}", str(r.alerts),
                  (r.errors or "")[:60])
    out.print(t)
