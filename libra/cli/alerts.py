"""`libra alerts`: metric alert rules, checked now, and what is firing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from libra.cli.common import DataTable, DbOption, open_store, out
from libra.cli.schedule import ALERT_EXIT, load_schedule

alerts_app = typer.Typer(help="Metric alerts: rules from the schedule config, what is firing now.",
                         no_args_is_help=True)


@alerts_app.command("check")
def alerts_check(
    config: Annotated[Path, typer.Argument(help="Schedule config holding the alert rules.")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Evaluate the alert rules now; exit status 3 when any fires."""
    from metrics.jobs.alerts import check

    states = check(open_store(db), load_schedule(config).alerts, job="alerts check")
    if as_json:
        out.print_json(json.dumps([vars(s) for s in states]))
    else:
        t = DataTable("rule", "metric set", "metric", "agent", "score", "threshold", "runs", "firing")
        for s in states:
            t.add_row(s.rule, s.metric_set_id, s.metric_id, s.agent or "all",
                      "—" if s.value is None else f"{s.value:.3f}", f"{s.threshold:g}", str(s.runs),
                      Text("FIRING", style="red") if s.firing else "ok")
        out.print(t)
    if any(s.firing for s in states):
        raise typer.Exit(ALERT_EXIT)


@alerts_app.command("list")
def alerts_list(db: DbOption = None) -> None:
    """Alerts firing now."""
    from metrics.jobs.alerts import firing

    df = firing(open_store(db))
    if df.empty:
        out.print("no alert is firing")
        return
    t = DataTable("rule", "metric", "agent", "score", "threshold", "runs", "since", "job")
    for r in df.itertuples(index=False):
        t.add_row(r.rule, r.metric, r.agent or "all", f"{r.value:.3f}", f"{r.threshold:g}", str(r.runs),
                  f"{r.raised_at:%Y-%m-%d %H:%M}", r.job or "")
    out.print(t)
