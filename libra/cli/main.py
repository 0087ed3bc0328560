"""The `libra` command: a thin front door over the library packages."""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated

import duckdb
import typer
from rich.markup import escape

from libra.cli import help_names
from libra.cli.alerts import alerts_app
from libra.cli.check import check_cmd, jobs_cmd
from libra.cli.compare import compare_cmd
from libra.cli.common import DataTable, DbOption, JsonOption, console, emit_json, fail, open_store, out, QuietOption
from libra.cli.ground import ground_cmd, locator_app
from libra.cli.induce import induce_cmd
from libra.cli.ingest import ingest_cmd
from libra.cli.lake import lake_app
from libra.cli.metrics import metrics_app
from libra.cli.pipa import pipa_app
from libra.cli.prefs import prefs_app
from libra.cli.proactive import proactive_app
from libra.cli.schedule import schedule_app
from libra.cli.score import score_cmd
from libra.cli.serve import serve_cmd
from libra.cli.users import user_app

help_names.install()

app = typer.Typer(
    name="libra",
    help="Evaluate AI agents from their traces and from what people say about them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("ingest")(ingest_cmd)
app.command("induce")(induce_cmd)
app.command("score")(score_cmd)
app.command("check")(check_cmd)
app.command("compare")(compare_cmd)
app.command("jobs")(jobs_cmd)
app.command("ground")(ground_cmd)
app.command("serve")(serve_cmd)
app.add_typer(metrics_app, name="metrics")
app.add_typer(user_app, name="user")
app.add_typer(pipa_app, name="pipa")
app.add_typer(prefs_app, name="prefs")
app.add_typer(proactive_app, name="proactive")
app.add_typer(schedule_app, name="schedule")
app.add_typer(alerts_app, name="alerts")
app.add_typer(locator_app, name="locator")
app.add_typer(lake_app, name="lake")


@app.command("index")
def index_cmd(db: DbOption = None) -> None:
    """Rebuild the full-text search index over run content (the app's search uses it)."""
    from libra.ingesting import rebuild_index

    store = open_store(db)
    if store.lake:
        out.print("DuckLake tables take no full-text index; search on a lake matches substrings")
        return
    ok = rebuild_index(store)
    out.print("search index rebuilt" if ok else "the fts extension is not installed; search falls back to substrings")


@app.command("embed")
def embed_cmd(
    db: DbOption = None,
    model: Annotated[str | None, typer.Option(help="Embedding model (default: $LIBRA_EMBEDDING_MODEL, "
                                                   "else the bundled all-MiniLM-L6-v2).")] = None,
    agent: Annotated[str | None, typer.Option(help="Only runs of this agent.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Only runs of this trace format.")] = None,
    ray: Annotated[str | None, typer.Option(
        help="Embed on a Ray cluster: its address (ray://HOST:10001, or auto), or local to start one here.")]
    = None,
    partition_size: Annotated[int, typer.Option(help="Runs per partition.", min=1)] = 500,
    quiet: QuietOption = False,
) -> None:
    """Embed the steps of runs not yet embedded, so offline judging of a backlog reads vectors from the cache.

    Partitions are committed exactly once, also when a worker dies; run it again
    to resume. Use a DuckLake store (LIBRA_STORE) when workers are on several machines.
    """
    from libra.cli.progress import staged
    from libra.embedding import embed

    with staged(quiet) as progress:
        res = embed(open_store(db), model=model, agent=agent, fmt=fmt, ray=ray, partition_size=partition_size,
                    progress=lambda d, t: progress("embed", d, t))
    out.print(f"{res.model}: {res.embedded:,} texts embedded ({res.texts - res.embedded:,} already cached) in "
              f"{res.partitions} partitions{' on Ray' if ray else ''}, {res.seconds:.1f}s (job {res.job_id})")


@app.command("formats")
def formats_cmd(
    explain: Annotated[Path | None, typer.Option(
        "--explain", help="Say why each format takes or declines this file.")] = None,
) -> None:
    """List the trace formats Libra can read (--explain FILE: which would read it, and why not the others)."""
    from traces import importers
    from traces.ingest.decode import decode

    if explain is None:
        t = DataTable("format", "description")
        for imp in importers.all_importers():
            t.add_row(imp.name, imp.description)
        out.print(t)
        return
    if not explain.is_file():
        raise fail(f"{explain}: not a file")
    decoded = decode(importers.Source(name=str(explain), path=explain))
    smp, verdicts = importers.explain(decoded.source)
    first = smp.first
    keys = ", ".join(list(first)[:20]) if isinstance(first, dict) else type(first).__name__ if first is not None \
        else "none could be read" + (f" ({smp.problem})" if smp.problem else "")
    out.print(f"{explain}: {smp.layout}, encoding {decoded.encoding or 'utf-8'}; first record's keys: {keys}")
    t = DataTable("format", "verdict", "it expects")
    for v in verdicts:
        said = "reads it" if v.chosen else \
            f"recognised {v.recognised} of {v.sampled} sampled records" if v.recognised else "declines"
        t.add_row(v.importer, said, v.expects)
    out.print(t)
    if not any(v.chosen for v in verdicts):
        out.print("no format reads it: pass --format NAME, or describe it with libra ingest --map mapping.yaml")
        raise typer.Exit(1)


@app.command("stats")
def stats_cmd(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Counts of runs, steps, feedback and quarantined records, by format and agent."""
    from traces.queries import runs_by_format_and_agent

    store = open_store(db)
    with store.hold():
        c = store.counts()
        df = runs_by_format_and_agent(store)
    if as_json:
        emit_json({"counts": c, "by_format_and_agent": df.to_dict(orient="records")})
        return
    out.print(", ".join(f"{k}: {v:,}" for k, v in c.items()))
    t = DataTable(*df.columns)
    for row in df.itertuples(index=False):
        t.add_row(*row)  # cells print whole numbers as integers and NaN as blank
    out.print(t)


@app.command("quarantine")
def quarantine_cmd(
    db: DbOption = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 50,
    source: Annotated[str | None, typer.Option(help="Only records from files containing this.")] = None,
    raw: Annotated[bool, typer.Option(help="Print each record's raw text too.")] = False,
) -> None:
    """Show rejected records: file, line, field and why."""
    from traces.queries import quarantined

    rows = quarantined(open_store(db), limit, source)
    if not rows:
        out.print("quarantine is empty")
        return
    t = DataTable("id", "source", "line", "field", "reason")
    for col in t.columns:
        col.overflow = "fold"
    for r in rows:
        t.add_row(str(r[0]), r[1], "" if r[2] is None else str(r[2]), r[3] or "", r[4])
    out.print(t)
    if raw:
        for r in rows:
            out.print(f"--- #{r[0]} {r[1]}:{r[2]}", markup=False)
            out.print(r[5] or "", markup=False)


@app.command("export")
def export_cmd(
    out_path: Annotated[Path, typer.Argument(help="Folder (parquet) or file (jsonl/otlp) to write.")],
    db: DbOption = None,
    as_: Annotated[str, typer.Option("--as", help="parquet, jsonl (Libra generic), otlp (traces with their notes "
                                                  "and verdicts as events), langfuse (score objects), phoenix "
                                                  "(span annotations) or adp (Agent Data Protocol trajectories "
                                                  "for fine-tuning, verdicts in details).")] = "parquet",
    where: Annotated[str | None, typer.Option(
        help="With --as adp: only runs meeting this, e.g. \"confirm_before_booking = 1 and reward >= 1\", "
             "\"pipa_tool_efficiency.rate >= 0.9\", \"feedback >= 1\" (metric ids or quoted names; "
             "= != > >= < <=; clauses joined by and).")] = None,
    limit: Annotated[int | None, typer.Option(help="With --as adp: at most this many runs.", min=1)] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's runs.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Only runs read from this format.")] = None,
    since: Annotated[str | None, typer.Option(help="Only runs started at or after (ISO date).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Export runs, steps and feedback for a bigger engine or another tool."""
    from traces.export import export_jsonl, export_langfuse, export_otlp, export_parquet, export_phoenix

    store = open_store(db)
    if where is not None and as_ != "adp":
        raise typer.BadParameter("--where selects runs for --as adp", param_hint="--where")
    if as_ == "adp":
        from libra.exporting import export_adp
        from metrics.selection import BadCondition

        try:
            e = export_adp(store, out_path, where=where, agent=agent, fmt=fmt, since=since, limit=limit)
        except BadCondition as exc:
            raise fail(str(exc)) from None
        counts, said = {"runs": e.runs}, f"{e.runs:,} ADP trajectories (validated) -> {out_path}"
    elif as_ == "parquet":
        counts = export_parquet(store, out_path, agent=agent, since=since, fmt=fmt)
        said = ", ".join(f"{k}: {v:,}" for k, v in counts.items()) + f" -> {out_path}/"
    elif as_ in ("jsonl", "otlp"):
        n = (export_jsonl if as_ == "jsonl" else export_otlp)(store, out_path, agent=agent, since=since, fmt=fmt)
        counts, said = {"runs": n}, f"{n:,} runs -> {out_path}"
    elif as_ in ("langfuse", "phoenix"):
        n = (export_langfuse if as_ == "langfuse" else export_phoenix)(store, out_path, agent=agent, since=since,
                                                                       fmt=fmt)
        counts, said = {"annotations": n}, f"{n:,} scores and notes -> {out_path}"
    else:
        raise typer.BadParameter("choose parquet, jsonl, otlp, langfuse, phoenix or adp", param_hint="--as")
    if as_json:
        emit_json({"as": as_, "path": str(out_path), **counts})
    else:
        out.print(said)


@app.command("costs")
def costs_cmd(
    db: DbOption = None,
    by: Annotated[str, typer.Option(help="Group by job, purpose, model or day.")] = "job",
) -> None:
    """Language-model calls and their cost: tokens, cache hits, failures, dollars."""
    from metrics.reports.queries import COST_GROUPS, llm_costs

    if by not in COST_GROUPS:
        raise typer.BadParameter(f"choose one of {', '.join(COST_GROUPS)}", param_hint="--by")
    df = llm_costs(open_store(db), by)
    if df.empty:
        out.print("no language-model calls recorded")
        return
    t = DataTable(*df.columns)
    for row in df.itertuples(index=False):
        t.add_row(*(str(v) for v in row))
    out.print(t)


demo_app = typer.Typer(help="The demo corpus.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")


@demo_app.command("build")
def demo_build(
    db: DbOption = None,
    runs: Annotated[int, typer.Option(help="How many runs to generate.")] = 240,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same corpus).")] = 7,
) -> None:
    """Generate the seeded demo corpus (agents, tool errors, loops, feedback) into the store."""
    from libra import demo_setup

    built = demo_setup.build(open_store(db, create=True), runs=runs, seed=seed)
    s = built.summary
    out.print(f"demo: {s['runs_added']} runs added, {s['duplicates']} already there, "
              f"{s['steps']:,} steps, {s['feedback']} feedback")
    if built.accounts_created:
        out.print("demo accounts (for this demo store only): "
                  + ", ".join(f"{n} / {p} ({r})" for n, r, p in demo_setup.DEMO_ACCOUNTS), markup=False)


@demo_app.command("score")
def demo_score(
    db: DbOption = None,
    quiet: QuietOption = False,
) -> None:
    """Fill the demo's dashboards offline: induce metrics, approve them, score every run, PIPA criteria,
    and record one scheduled job run with an example alert rule."""
    from libra import demo_setup
    from libra.cli.progress import staged

    with staged(quiet) as progress:
        filled = demo_setup.fill(open_store(db), progress)
    if filled.induced is not None:
        out.print(f"induced {len(filled.induced.metrics)} metrics; held-out coverage {filled.heldout_coverage:.2f}, "
                  f"redundancy {filled.heldout_redundancy:.2f}")
    out.print("scored: " + ", ".join(f"{ms.set_id} {r.runs_scored} runs" for ms, r in filled.scored), markup=False)
    r = filled.job
    out.print(f"scheduled job recorded: {r['status']}" + (f"; {r['alerts'][0]}" if r["alerts"] else ""),
              markup=False)


@demo_app.command("write")
def demo_write(
    path: Annotated[Path, typer.Argument(help="JSONL file to write (Libra generic format).")],
    runs: Annotated[int, typer.Option(help="How many runs.")] = 240,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Write the demo corpus as a generic JSONL file instead of into a store."""
    from libra.demo import generate_runs
    from traces.export import write_jsonl

    n = write_jsonl(generate_runs(runs, seed), path)
    out.print(f"{n} runs -> {path}")


def app_script() -> Path:
    spec = find_spec("libra.web.app")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("libra/web/app.py not found; is Libra installed with its [app] extra?")
    return Path(spec.origin)


@app.command("app")
def app_cmd(
    db: DbOption = None,
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to listen on: this machine only by default; 0.0.0.0 "
                                           "for every interface (put TLS in front of it).")] = "127.0.0.1",
    headless: Annotated[bool, typer.Option(help="Do not open a browser.")] = True,
) -> None:
    """Start the Streamlit app on the store."""
    store = open_store(db, create=True)
    env = {**os.environ, "LIBRA_STORE": store.path}
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_script()), "--server.port", str(port),
           "--server.address", host, "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
           # Streamlit's full garbage collection after every rerun took ~40 % of a page's time
           "--runner.postScriptGC", "false",
           # no door around the sign-in page: the experimental agent API stays off, XSRF checks on
           "--server.enableAgentApi", "false", "--server.enableXsrfProtection", "true",
           "--server.headless", str(headless).lower(), "--browser.gatherUsageStats", "false"]
    where = "this machine only" if host in ("127.0.0.1", "localhost", "::1") else f"every client that reaches {host}"
    console.print(f"Libra app on http://{host}:{port}, listening for {where}  (store: {escape(store.path)})")
    # Become the server rather than wait on it: a signal to `libra app` (Ctrl-C, systemd's stop, a
    # kill) then reaches Streamlit itself, and no server is left running without its parent.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, env)


def main() -> None:
    """The `libra` command: the app above, with operating-system failures as one clear line.

    A full disk, a read-only store or a missing folder is the operator's to fix, not
    a bug: it gets the path and what happened, exit status 1, and no traceback.
    """
    try:
        app()
    except (OSError, duckdb.IOException) as exc:
        what = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename else str(exc)
        console.print(f"[red]error:[/] {escape(what)}\n(check that the path exists, can be written and has "
                      "free space; the store keeps what was committed before the error)")
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()
