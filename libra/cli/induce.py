"""`libra induce`: metrics from people's feedback."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Annotated

import typer
from rich.markup import escape

from libra.cli.common import BackendOption, CostOption, DataTable, DbOption, console, fail, open_store, out, QuietOption
from libra.cli.progress import staged



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
    quiet: QuietOption = False,
) -> None:
    """Induce metrics from the feedback in the store and report coverage and redundancy.

    Feedback is grounded into aspects, clustered, and each cluster becomes a metric
    with good and bad examples. Several granularities are tried; the set on the
    coverage–redundancy frontier with the best balance is saved as a draft.
    """
    from autolibra.induce import InduceConfig
    from libra.inducing import induce, tools

    split = {"auto": (False, True), "always": (True,), "never": (False,)}.get(facets)
    if split is None:
        raise typer.BadParameter(f"{facets!r}: use auto, always or never", param_hint="--facets")
    store = open_store(db)
    b = tools(store, backend, max_cost)
    console.print(f"backend: {b.label}")
    cfg = InduceConfig(holdout=holdout, random_state=seed, split_mixed=split, max_redundancy=max_redundancy)
    if min_cluster_size:
        cfg = replace(cfg, min_cluster_sizes=tuple(min_cluster_size))
    started = time.monotonic()
    try:
        with staged(quiet) as progress:
            res = induce(store, with_tools=b, config=cfg, set_id=set_id, name=name, progress=progress)
    except ValueError as exc:
        raise fail(str(exc)) from None
    ms = res.metric_set
    s = res.summary()
    distinct = len({(c.labels.tobytes(), bool(c.params.get("split_mixed"))) for c in res.candidates})
    line = (f"{ms.set_id} v{ms.version}: {len(ms.metrics)} metrics from {s['aspects_train']:,} aspects; "
            f"held-out coverage {s['heldout']['coverage']:.3f}, redundancy {s['heldout']['redundancy']:.3f}; "
            f"{len(res.candidates)} candidates ({distinct} distinct) in {time.monotonic() - started:,.1f} s ({b.kind})")
    if quiet:  # the one line a scheduled job's log needs
        out.print(escape(line), soft_wrap=True)  # one line in a log, however narrow the terminal
        if res.failures:
            console.print(f"[yellow]{len(res.failures)} feedback items could not be grounded[/]")
        return
    t = DataTable(title=escape(f"{ms.set_id} v{ms.version}: {len(ms.metrics)} metrics ({b.kind})"))
    for col in ("metric", "aspects", "praised", "criticised", "facet"):
        t.add_column(col)
    for m in ms.metrics:
        t.add_row(m.name, str(m.metadata.get("aspects", "")), str(m.metadata.get("praised", "")),
                  str(m.metadata.get("criticised", "")), m.metadata.get("facet", ""))
    out.print(t)
    f = DataTable(title="coverage and redundancy", show_lines=False)
    for col in ("part", "aspects", "coverage", "redundancy", "redundancy (N/A counted)"):
        f.add_column(col)
    for part in ("train", "heldout"):
        r = s[part]
        f.add_row("induction" if part == "train" else "held-out", str(r["aspects"]), f"{r['coverage']:.3f}",
                  f"{r['redundancy']:.3f}", f"{r['redundancy_all']:.3f}")
    out.print(f)
    out.print(escape(line))
    out.print(f"See the frontier with `libra metrics show {ms.set_id}` "
              f"or in the app. Approve with `libra metrics approve {ms.set_id} {ms.version} --by NAME`.")
    if res.failures:
        console.print(f"[yellow]{len(res.failures)} feedback items could not be grounded[/]")
