"""`libra pipa`: PIPA criteria, scored stage by stage, and where agents fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from libra.cli.common import BackendOption, CostOption, DataTable, DbOption, console, figure, open_store, out, QuietOption
from libra.cli.progress import staged

pipa_app = typer.Typer(help="PIPA atomic criteria: score runs stage by stage and show where agents fail.",
                       no_args_is_help=True)


@pipa_app.command("score")
def pipa_score(
    db: DbOption = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Only runs of this trace format.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only runs of this agent.")] = None,
    policy: Annotated[Path | None, typer.Option(help="A file with the domain policy (default: each run's "
                                                     "system prompt when it reads like rules).")] = None,
    backend: BackendOption = "auto",
    max_cost: CostOption = None,
    quiet: QuietOption = False,
) -> None:
    """Score runs on the five PIPA criteria. Offline, state consistency and policy adherence need a judge."""
    from libra.scoring import score_pipa_runs

    text = policy.read_text(encoding="utf-8") if policy else None
    with staged(quiet) as progress:
        judge, results = score_pipa_runs(open_store(db), backend=backend, max_cost=max_cost, fmt=fmt, agent=agent,
                                         policy=text, progress=lambda d, t: progress("pipa", d, t))
    console.print(f"judge: {judge}" + ("" if judge == "pipa-llm" else
                  " (computed criteria only; state consistency and policy adherence need ANTHROPIC_API_KEY)"))
    code = 0
    for ms, res in results:
        out.print(f"{ms.set_id} v{ms.version}: {res.runs_scored} runs scored, {res.runs_failed} failed, "
                  f"{res.runs_skipped} already done, ${res.cost_usd:.4f}, {res.status}")
        code = code or int(res.status != "done" or res.runs_failed > 0)
    raise typer.Exit(code)


@pipa_app.command("profile")
def pipa_profile(
    db: DbOption = None,
    run: Annotated[str | None, typer.Option(help="One run's profile instead of every agent's.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each criterion's pass rate per agent (or run), the weakest stage, and its relation to the reward."""
    from pipa import profile

    store = open_store(db)
    with store.hold():
        prof = profile.run_profile(store, run) if run else profile.agent_profile(store)
        rel = profile.reward_relation(store, [run] if run else None)
    if as_json:
        out.print_json(json.dumps({"profile": prof.drop(columns=["backends"]).to_dict("records"),
                                   "reward_relation": rel.to_dict("records")}, default=str))
        return
    if prof.empty:
        console.print("no PIPA scores yet; run `libra pipa score` first")
        raise typer.Exit(1)
    t = DataTable("agent", "criterion", "stage", "pass rate", "units", "runs")
    for r in prof.itertuples(index=False):
        t.add_row(r.agent, r.criterion, r.stage, figure(r.rate) if r.status == "scored" else "needs a judge",
                  str(r.units), str(r.runs))
    out.print(t)
    if not run:
        t = DataTable("criterion", "runs", "rate", "rate | success", "rate | failure", "point-biserial r", "p")
        for r in rel.itertuples(index=False):
            t.add_row(r.criterion, str(r.runs), figure(r.rate), figure(r.rate_success), figure(r.rate_failure),
                      figure(r.r_pb), figure(r.p))
        out.print(t)
