"""`libra compare A B`: is release B better than A, on which metrics, and which runs show it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from libra.cli.common import DataTable, DbOption, JsonOption, emit_json, fail, figure, open_store, out


def compare_cmd(
    a: Annotated[str, typer.Argument(help="The baseline release: an agent as stored (e.g. travel-concierge@v1).")],
    b: Annotated[str, typer.Argument(help="The release compared with it (e.g. travel-concierge@v2).")],
    db: DbOption = None,
    set_id: Annotated[str | None, typer.Option("--set", help="Metric set (default: the approved set that "
                                                             "scored the most runs of both).")] = None,
    version: Annotated[int | None, typer.Option(help="Set version (default: the newest that scored both).")] = None,
    alpha: Annotated[float, typer.Option(help="Family-wise error rate over the metrics (Holm).", min=0.0001,
                                         max=0.5)] = 0.05,
    report: Annotated[str | None, typer.Option(help="Write a report instead of the table: markdown or html.")]
    = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report to this file.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Per metric: both scores, B − A with its 95% interval, the Holm-corrected p-value and the runs that show it.

    Paired by task where both releases ran the same tasks. PIPA stages and proactivity
    are shown beside. Exit status 1 when B is significantly worse on any metric, so a
    pipeline can stop a release on it.
    """
    from libra.comparing import NoScores, compare, compare_report

    store = open_store(db)
    try:
        c = compare(store, a, b, set_id=set_id, version=version, alpha=alpha)
    except (KeyError, NoScores) as exc:
        raise fail(str(exc.args[0] if exc.args else exc)) from None
    if report is not None:
        if report not in ("markdown", "html"):
            raise fail("--report must be markdown or html")
        text = compare_report(c, report)
        if output is None:
            out.file.write(text)
        else:
            output.write_text(text, encoding="utf-8")
            out.print(f"report written to {output}")
    elif as_json:
        emit_json({"a": c.a, "b": c.b, "set_id": c.set_id, "version": c.version, "alpha": c.alpha,
                   "runs_a": c.runs_a, "runs_b": c.runs_b, "metrics": list(c.metrics),
                   "pipa": c.pipa.to_dict("records"), "proactive": c.proactive.to_dict("records")})
    else:
        t = DataTable(title=f"{b} against {a}: set {c.set_id} v{c.version}, Holm α = {c.alpha:g}")
        for col in ("metric", "A", "B", "B − A", "95% interval", "p (Holm)", "verdict", "runs A / B"):
            t.add_column(col)
        for m in c.metrics:
            t.add_row(m.name, figure(m.score_a), figure(m.score_b), f"{m.diff:+.3f}",
                      f"[{figure(m.lo)}, {figure(m.hi)}]", figure(m.p_adjusted), m.verdict,
                      f"{m.n_a} / {m.n_b}{' paired' if m.paired else ''}")
        out.print(t)
        for m in c.metrics:
            for e in m.examples:
                out.print(f"{m.name} ({m.verdict}): A {e.run_a} {e.rate_a:.0%} vs B {e.run_b} {e.rate_b:.0%}"
                          + (" (same task)" if e.task else ""))
        out.print(f"{len(c.improved)} better, {len(c.regressed)} worse, "
                  f"{len(c.metrics) - len(c.improved) - len(c.regressed)} without a clear change")
    if c.regressed:
        raise typer.Exit(1)
