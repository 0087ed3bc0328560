"""`libra score`: approved metric sets on the runs they have not scored."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated

import typer

from libra.cli.common import (
    BackendOption, CostOption, DbOption, JsonOption, console, emit_json, fail, open_store, out, QuietOption,
)
from libra.cli.progress import staged
from libra.defaults import BATCH_FROM


def score_cmd(
    db: DbOption = None,
    set_id: Annotated[str | None, typer.Option("--set", help="Metric set (default: every approved set).")] = None,
    version: Annotated[int | None, typer.Option(help="Version (default: the newest).")] = None,
    backend: BackendOption = "auto",
    max_cost: CostOption = None,
    batch: Annotated[str, typer.Option(help="Message Batches API (half price, slower): on, off, or auto "
                                            f"(on from {BATCH_FROM} pending runs).")] = "auto",
    agent: Annotated[str | None, typer.Option(help="Only runs of this agent.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Only runs of this trace format.")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only runs started since (UTC).")] = None,
    sample: Annotated[float | None, typer.Option(help="Score this share of runs (0-1), chosen by a stable hash "
                                                      "of the run id so later passes keep the same sample.")]
    = None,
    ray: Annotated[str | None, typer.Option(
        help="Score on a Ray cluster: its address (ray://HOST:10001, or auto for the cluster this machine "
             "belongs to), or local to start one here. Each partition of runs is committed exactly once, "
             "also when a worker dies; use a DuckLake store (LIBRA_STORE) when workers are on several machines.")]
    = None,
    partition_size: Annotated[int, typer.Option(help="With --ray: runs per partition, at most.", min=1)] = 100,
    partition_steps: Annotated[int, typer.Option(
        help="With --ray: steps per partition, at most (a longer run is a partition of its own), so "
             "partitions take alike however long their runs.", min=1)] = 5000,
    workers: Annotated[int | None, typer.Option(
        help="With --ray local: how many workers (CPUs) the local cluster runs; default: this machine's.",
        min=1)] = None,
    focus: Annotated[str | None, typer.Option(
        help="Judge every metric on this one actor of each run (e.g. one agent of a dialogue).")] = None,
    per_agent: Annotated[bool, typer.Option(
        "--per-agent", help="Judge every metric on each agent of a multi-agent run, not only the metrics "
                            "whose subject is 'agent'.")] = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Score runs not yet scored by a metric set version: incremental, resumable, with a budget.

    Applies induced metric sets, PIPA criteria and (with a trained reward
    model, via `libra proactive score`) proactivity. Exit status 1 when a
    run failed or the budget stopped the job.
    """
    from libra.scoring import score, score_on_ray

    if batch not in ("on", "off", "auto"):
        raise typer.BadParameter("on, off or auto", param_hint="--batch")
    if focus is not None and per_agent:
        raise typer.BadParameter("give --focus or --per-agent, not both", param_hint="--focus")
    store = open_store(db)
    if ray is not None:
        if focus is not None or per_agent:
            raise fail("--focus and --per-agent are not taken with --ray yet: Ray workers judge each metric on "
                       "the subject its definition names")
        with staged(quiet) as progress:
            done = score_on_ray(store, ray=ray, set_id=set_id, version=version, backend=backend,
                                     partition_size=partition_size, partition_steps=partition_steps,
                                     workers=workers, agent=agent, fmt=fmt, since=since,
                                     sample=sample, progress=progress)
        if as_json:
            emit_json([{"set": ms.set_id, "version": ms.version, **dataclasses.asdict(r)} for ms, r in done])
        for ms, ray_res in done if not as_json else ():
            out.print(f"{ms.set_id} v{ms.version}: {ray_res.runs_scored} runs scored, {ray_res.runs_failed} failed, "
                      f"{ray_res.partitions} partitions on Ray in {ray_res.seconds:.1f}s (job {ray_res.job_id})")
        raise typer.Exit(1 if any(r.runs_failed for _, r in done) else 0 if done else 2)
    try:
        with staged(quiet) as progress:
            results = score(store, set_id=set_id, version=version, backend=backend, max_cost=max_cost,
                            batch=batch, agent=agent, fmt=fmt, since=since, sample=sample, focus=focus,
                            per_agent=per_agent, progress=progress)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise fail(str(exc.args[0] if exc.args else exc)) from None
    if not results:
        console.print("no approved metric set to apply; pass --set or approve one")
        raise typer.Exit(2)
    exit_code = 1 if any(res.status != "done" or res.runs_failed for _, res in results) else 0
    if as_json:
        emit_json([{"set": ms.set_id, "version": ms.version, **dataclasses.asdict(res),
                    "needs_llm": [{"metric": n, "why": w} for n, w in res.needs_llm]} for ms, res in results])
        raise typer.Exit(exit_code)
    for ms, res in results:
        out.print(f"{ms.name} ({ms.set_id} v{ms.version}): {res.runs_scored} runs scored, {res.runs_failed} failed, "
                  f"{res.runs_up_to_date} already scored"
                  + (f", {res.runs_skipped} left to another process" if res.runs_skipped else "")
                  + f", ${res.cost_usd:.4f}, {res.status}" + (f" ({res.error})" if res.error else ""))
        for name, why in res.needs_llm:
            out.print(f"  not scored, needs an LLM judge: {name} ({why})")
    raise typer.Exit(exit_code)
