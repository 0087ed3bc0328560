"""`libra induce`, `libra metrics ...` and `libra score`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from libra.cli.common import DbOption, console, open_store, out
from libra.cli.progress import staged

BackendOption = Annotated[str, typer.Option("--backend", help="auto (LLM with ANTHROPIC_API_KEY, else offline), "
                                                             "llm or offline.")]
CostOption = Annotated[float | None, typer.Option("--max-cost", help="Stop cleanly before spending more (USD).")]


def induce_cmd(
    db: DbOption = None,
    backend: BackendOption = "auto",
    set_id: Annotated[str, typer.Option("--set-id", help="Metric set id; a new version is added.")] = "induced",
    name: Annotated[str, typer.Option(help="Metric set name.")] = "Induced metrics",
    holdout: Annotated[float, typer.Option(help="Share of runs held out for evaluation.")] = 0.3,
    min_cluster_size: Annotated[list[int] | None, typer.Option(help="HDBSCAN sizes to search (repeatable).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed for the split and the clustering.")] = 0,
    facets: Annotated[str, typer.Option(help="Topics people both praised and criticised as two metrics, one "
                                             "per side: auto (search both ways), always or never.")] = "auto",
    max_redundancy: Annotated[float | None, typer.Option(
        help="Choose the most covering set at most this redundant (on the induction part) instead of "
             "the best balance.")] = None,
    max_cost: CostOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Induce metrics from the feedback in the store and report coverage and redundancy.

    Feedback is grounded into aspects, clustered, and each cluster becomes a metric
    with good and bad examples. Several granularities are tried; the set on the
    coverage–redundancy frontier with the best balance is saved as a draft.
    """
    from autolibra import backends
    from autolibra.induce import InduceConfig, induce

    split = {"auto": (False, True), "always": (True,), "never": (False,)}.get(facets)
    if split is None:
        raise typer.BadParameter(f"{facets!r}: use auto, always or never", param_hint="--facets")
    store = open_store(db)
    b = backends.choose(store, backend, max_cost)
    console.print(f"backend: {b.label}")
    cfg = InduceConfig(holdout=holdout, random_state=seed, split_mixed=split, max_redundancy=max_redundancy,
                       **({"min_cluster_sizes": tuple(min_cluster_size)} if min_cluster_size else {}))
    try:
        with staged(quiet) as progress:
            res = induce(store, grounder=b.grounder, namer=b.namer, embedder=b.embedder,
                         judge_factory=b.judge_factory, matcher_factory=b.matcher_factory, config=cfg,
                         set_id=set_id, name=name, progress=progress)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    ms = res.metric_set
    t = Table(title=f"{ms.set_id} v{ms.version}: {len(ms.metrics)} metrics ({b.kind})")
    for col in ("metric", "aspects", "praised", "criticised", "facet"):
        t.add_column(col)
    for m in ms.metrics:
        t.add_row(m.name, str(m.metadata.get("aspects", "")), str(m.metadata.get("praised", "")),
                  str(m.metadata.get("criticised", "")), m.metadata.get("facet", ""))
    out.print(t)
    s = res.summary()
    f = Table(title="coverage and redundancy", show_lines=False)
    for col in ("part", "aspects", "coverage", "redundancy", "redundancy (N/A counted)"):
        f.add_column(col)
    for part in ("train", "heldout"):
        r = s[part]
        f.add_row("induction" if part == "train" else "held-out", str(r["aspects"]), f"{r['coverage']:.3f}",
                  f"{r['redundancy']:.3f}", f"{r['redundancy_all']:.3f}")
    out.print(f)
    out.print(f"{len(res.candidates)} candidates searched; see the frontier with `libra metrics show {ms.set_id}` "
              f"or in the app. Approve with `libra metrics approve {ms.set_id} {ms.version} --by NAME`.")
    if res.failures:
        console.print(f"[yellow]{len(res.failures)} feedback items could not be grounded[/]")


metrics_app = typer.Typer(help="Metric sets: list, show, export, import, approve.", no_args_is_help=True)


@metrics_app.command("list")
def metrics_list(db: DbOption = None) -> None:
    """Every metric set and version with its status."""
    from metrics import sets

    df = sets.list_sets(open_store(db))
    if df.empty:
        out.print("no metric sets yet; create one with `libra induce` or `libra metrics import`")
        return
    t = Table("set", "version", "status", "metrics", "created", "approved by", "name")
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
        console.print(f"[red]error:[/] {exc.args[0]}")
        raise typer.Exit(2) from None
    out.print(f"[bold]{ms.name}[/] ({ms.set_id} v{ms.version}, {ms.status})")
    for m in ms.metrics:
        out.print(f"\n[bold]{m.name}[/]  [dim]{m.metric_id}[/]", highlight=False)
        out.print(m.explanation, markup=False)
        for label, exs in (("+", m.good), ("-", m.bad)):
            for e in exs[:3]:
                out.print(f"  {label} {e.text}", markup=False)
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
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    ms = sets.save(open_store(db), ms, backend="import", created_by=by, note=f"imported from {path.name}")
    out.print(f"imported {ms.set_id} v{ms.version} ({len(ms.metrics)} metrics)")


@metrics_app.command("approve")
def metrics_approve(set_id: str, version: int, by: Annotated[str, typer.Option(help="Who approves.")],
                    db: DbOption = None) -> None:
    """Approve a version: scheduled scoring applies approved sets."""
    from metrics import sets

    try:
        sets.approve(open_store(db), set_id, version, by)
    except KeyError as exc:
        console.print(f"[red]error:[/] {exc.args[0]}")
        raise typer.Exit(2) from None
    out.print(f"{set_id} v{version} approved by {by}")


def judge_for(store, ms, b, batch: bool = False):
    """The judge a metric set needs: PIPA sets mix computed and judged criteria."""
    from autolibra import backends
    from metrics.judges.llm import LLMJudge
    from pipa.judge import PipaJudge

    llm = LLMJudge(b.llm, use_batch=batch) if b.kind == "llm" else None
    kind = ms.provenance.get("kind")
    if kind == "pipa":
        return PipaJudge(llm)
    if kind == "proactivity":
        return None
    return llm or backends.fit_offline_judge(store, ms, b.embedder)


def build_judge(store, ms, backend: str = "auto"):
    """A metric set's judge, built where it runs (a Ray worker, a worker process)."""
    from autolibra import backends

    return judge_for(store, ms, backends.choose(store, backend, None))


def score_distributed(store, *, ray: str, set_id: str | None = None, version: int | None = None,
                      backend: str = "auto", partition_size: int = 100, agent=None, fmt=None, since=None,
                      sample=None, progress=None) -> list:
    """Score the backlog of each metric set on a Ray cluster; [(set, DistributedSummary)]."""
    import functools

    from metrics import sets
    from metrics.jobs.distributed import score_on_ray
    from metrics.scoring import select_runs

    targets = [sets.load(store, set_id, version)] if set_id else sets.approved(store)
    out = []
    for ms in targets:
        judge = build_judge(store, ms, backend)  # here only to learn its name; workers build their own
        if judge is None:
            continue
        ids = select_runs(store, agent=agent, fmt=fmt, since=since, sample=sample, salt=ms.set_id)
        res = score_on_ray(store, ms, judge.backend, functools.partial(build_judge, backend=backend),
                           address=None if ray == "local" else ray, run_ids=ids, size=partition_size,
                           progress=(lambda d, t, k=ms.set_id: progress(k, d, t)) if progress else None)
        out.append((ms, res))
    return out


BATCH_FROM = 500  # pending runs from which `--batch auto` uses the Message Batches API


def score_approved(store, *, set_id: str | None = None, version: int | None = None, backend: str = "auto",
                   max_cost: float | None = None, batch: str = "auto", agent: str | None = None,
                   fmt: str | None = None, since=None, sample: float | None = None, progress=None) -> list:
    """Apply metric sets (default: every approved one) to runs they have not scored; [(set, summary)]."""
    from autolibra import backends
    from metrics import sets
    from metrics.scoring import score_runs, select_runs, unscored

    targets = [sets.load(store, set_id, version)] if set_id else sets.approved(store)
    b = backends.choose(store, backend, max_cost)
    results = []
    if any(ms.provenance.get("kind") == "pipa" for ms in targets):
        # PIPA sets are per domain policy: score_pipa finds each new run's policy and its set
        from metrics.judges.llm import LLMJudge
        from pipa.judge import PipaJudge
        from pipa.scoring import score_pipa

        ids = select_runs(store, agent=agent, fmt=fmt, since=since, sample=sample, salt="pipa")
        judge = PipaJudge(LLMJudge(b.llm) if b.kind == "llm" else None)
        results += score_pipa(store, judge, run_ids=ids, max_cost=max_cost,
                              progress=(lambda d, t: progress("pipa", d, t)) if progress else None)
        targets = [ms for ms in targets if ms.provenance.get("kind") != "pipa"]
    for ms in targets:
        ids = select_runs(store, agent=agent, fmt=fmt, since=since, sample=sample, salt=ms.set_id)
        use_batch = batch == "on" or (batch == "auto" and b.kind == "llm" and
                                      len(unscored(store, ms, "llm", ids)) >= BATCH_FROM)
        judge = judge_for(store, ms, b, use_batch)
        if judge is None:
            continue
        res = score_runs(store, ms, judge, run_ids=ids, max_cost=max_cost,
                         progress=(lambda d, t, k=ms.set_id: progress(k, d, t)) if progress else None)
        results.append((ms, res))
    return results


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
    partition_size: Annotated[int, typer.Option(help="With --ray: runs per partition.", min=1)] = 100,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Score runs not yet scored by a metric set version: incremental, resumable, with a budget.

    Applies induced metric sets, PIPA criteria and (with a trained reward
    model, via `libra proactive score`) proactivity. Exit status 1 when a
    run failed or the budget stopped the job.
    """
    if batch not in ("on", "off", "auto"):
        raise typer.BadParameter("on, off or auto", param_hint="--batch")
    store = open_store(db)
    if ray is not None:
        with staged(quiet) as progress:
            done = score_distributed(store, ray=ray, set_id=set_id, version=version, backend=backend,
                                     partition_size=partition_size, agent=agent, fmt=fmt, since=since,
                                     sample=sample, progress=progress)
        for ms, res in done:
            out.print(f"{ms.set_id} v{ms.version}: {res.runs_scored} runs scored, {res.runs_failed} failed, "
                      f"{res.partitions} partitions on Ray in {res.seconds:.1f}s (job {res.job_id})")
        raise typer.Exit(1 if any(r.runs_failed for _, r in done) else 0 if done else 2)
    try:
        with staged(quiet) as progress:
            results = score_approved(store, set_id=set_id, version=version, backend=backend, max_cost=max_cost,
                                     batch=batch, agent=agent, fmt=fmt, since=since, sample=sample,
                                     progress=progress)
    except (KeyError, ValueError, RuntimeError) as exc:
        console.print(f"[red]error:[/] {exc.args[0] if exc.args else exc}")
        raise typer.Exit(2) from None
    if not results:
        console.print("no approved metric set to apply; pass --set or approve one")
        raise typer.Exit(2)
    exit_code = 0
    for ms, res in results:
        out.print(f"{ms.set_id} v{ms.version}: {res.runs_scored} runs scored, {res.runs_failed} failed, "
                  f"{res.runs_skipped} already done, ${res.cost_usd:.4f}, {res.status}"
                  + (f" ({res.error})" if res.error else ""))
        if res.status != "done" or res.runs_failed:
            exit_code = 1
    raise typer.Exit(exit_code)
