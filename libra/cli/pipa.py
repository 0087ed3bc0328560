"""`libra pipa` and `libra proactive`: PIPA criteria and proactivity reward models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from libra.cli.common import DbOption, console, open_store, out
from libra.cli.induce import BackendOption, CostOption
from libra.cli.progress import staged

pipa_app = typer.Typer(help="PIPA atomic criteria: score runs stage by stage and show where agents fail.",
                       no_args_is_help=True)
proactive_app = typer.Typer(help="Proactivity reward models (ProactiveBench): train, evaluate, score agents.",
                            no_args_is_help=True)


def _fmt(x) -> str:
    return "—" if x is None or x != x else f"{x:.3f}"


@pipa_app.command("score")
def pipa_score(
    db: DbOption = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Only runs of this trace format.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only runs of this agent.")] = None,
    policy: Annotated[Path | None, typer.Option(help="A file with the domain policy (default: each run's "
                                                     "system prompt when it reads like rules).")] = None,
    backend: BackendOption = "auto",
    max_cost: CostOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Score runs on the five PIPA criteria. Offline, state consistency and policy adherence need a judge."""
    from autolibra import backends
    from metrics.judges.llm import LLMJudge
    from pipa.judge import PipaJudge
    from pipa.scoring import score_pipa

    store = open_store(db)
    b = backends.choose(store, backend, max_cost)
    judge = PipaJudge(LLMJudge(b.llm) if b.kind == "llm" else None)
    console.print(f"judge: {judge.backend}" + ("" if b.kind == "llm" else
                  " (computed criteria only; state consistency and policy adherence need ANTHROPIC_API_KEY)"))
    text = policy.read_text(encoding="utf-8") if policy else None
    with staged(quiet) as progress:
        results = score_pipa(store, judge, fmt=fmt, agent=agent, policy=text, max_cost=max_cost,
                             progress=lambda d, t: progress("pipa", d, t))
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
    prof = profile.run_profile(store, run) if run else profile.agent_profile(store)
    rel = profile.reward_relation(store, [run] if run else None)
    if as_json:
        out.print_json(json.dumps({"profile": prof.drop(columns=["backends"]).to_dict("records"),
                                   "reward_relation": rel.to_dict("records")}, default=str))
        return
    if prof.empty:
        console.print("no PIPA scores yet; run `libra pipa score` first")
        raise typer.Exit(1)
    t = Table("agent", "criterion", "stage", "pass rate", "units", "runs")
    for r in prof.itertuples(index=False):
        t.add_row(r.agent, r.criterion, r.stage, _fmt(r.rate) if r.status == "scored" else "needs a judge",
                  str(r.units), str(r.runs))
    out.print(t)
    if not run:
        t = Table("criterion", "runs", "rate", "rate | success", "rate | failure", "point-biserial r", "p")
        for r in rel.itertuples(index=False):
            t.add_row(r.criterion, str(r.runs), _fmt(r.rate), _fmt(r.rate_success), _fmt(r.rate_failure),
                      _fmt(r.r_pb), _fmt(r.p))
        out.print(t)


@proactive_app.command("train")
def proactive_train(
    data: Annotated[Path, typer.Argument(help="ProactiveBench reward data (train_data.jsonl); "
                                              "default: the labelled proposals in the store.")] = None,
    db: DbOption = None,
    kind: Annotated[str, typer.Option(help="embedding-lr (fast floor) or finetuned-minilm (CPU fine-tune).")]
    = "embedding-lr",
    name: Annotated[str, typer.Option(help="Artefact name; each training adds a version.")] = "proactive-reward",
    folds: Annotated[int, typer.Option(help="Grouped cross-validation folds reported with the model (0: none).")] = 4,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs.")] = 3,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train a reward model, cross-validate it, and save it as a versioned artefact."""
    from metrics.embeddings import default_embedder
    from pipa.proactive import artefacts, data as pdata
    from pipa.proactive.evaluate import cross_validate
    from pipa.proactive.reward import EmbeddingRewardModel, FineTunedRewardModel

    store = open_store(db)
    try:
        proposals = pdata.load_jsonl(data) if data else pdata.from_store(store)
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if not proposals:
        console.print("no labelled proposals; pass a train_data.jsonl or ingest one first")
        raise typer.Exit(2)
    emb = default_embedder(store)
    with staged(quiet) as progress:
        def make():
            if kind == "embedding-lr":
                return EmbeddingRewardModel(embedder=emb)
            if kind == "finetuned-minilm":
                return FineTunedRewardModel(epochs=epochs, progress=lambda d, t: progress("fine-tune", d, t))
            raise typer.BadParameter(f"unknown kind {kind!r}")
        cv = cross_validate(make, proposals, folds, progress=lambda d, t: progress("cv folds", d, t)) \
            if folds > 1 else None
        model = make().fit(proposals)
    metrics = {"cv": {k: v for k, v in cv.items() if k != "probabilities"}} if cv else {}
    manifest = artefacts.save(store, model, name, data_hash=pdata.data_hash(proposals), metrics=metrics)
    out.print(f"saved {manifest['model_id']} ({kind}) at {manifest['path']}; data {manifest['data_hash'][:12]}, "
              f"{len(proposals)} proposals")
    if cv:
        _print_metrics("cross-validated (grouped by event stream)", cv["pooled"], cv["accept_all"],
                       cv.get("people"))
        if cv.get("people"):
            out.print("people: each annotator's verdict against the majority of the others "
                      f"({cv['people']['n']} verdicts); a model cannot agree with people more than they do")


def _print_metrics(title: str, m: dict, accept_all: dict | None = None, people: dict | None = None) -> None:
    t = Table("measure", "reward model", *(["accept everything"] if accept_all else []),
              *(["people"] if people else []), title=title)
    for k in ("accuracy", "precision", "recall", "f1"):
        t.add_row(k, _fmt(m[k]), *([_fmt(accept_all[k])] if accept_all else []),
                  *([_fmt(people[k])] if people else []))
    for c, v in m["categories"].items():
        t.add_row(f"agreement {c} (n={v['n']})", _fmt(v["agreement"]),
                  *([_fmt(accept_all["categories"][c]["agreement"])] if accept_all else []),
                  *([""] if people else []))
    out.print(t)


@proactive_app.command("eval")
def proactive_eval(
    data: Annotated[Path, typer.Argument(help="Labelled proposals (train_data.jsonl format).")],
    db: DbOption = None,
    name: Annotated[str, typer.Option(help="Saved reward model.")] = "proactive-reward",
    version: Annotated[int | None, typer.Option(help="Model version (default: newest).")] = None,
) -> None:
    """ProactiveBench's measures of a saved reward model on labelled proposals."""
    from metrics.embeddings import default_embedder
    from pipa.proactive import artefacts, data as pdata
    from pipa.proactive.evaluate import reward_model_metrics

    store = open_store(db)
    model = artefacts.load(store, name, version, embedder=default_embedder(store))
    proposals = pdata.load_jsonl(data)
    _print_metrics(f"{model.model_id_} on {data.name}", reward_model_metrics(proposals, model.predict(proposals)),
                   reward_model_metrics(proposals, [True] * len(proposals)))


@proactive_app.command("score")
def proactive_score(
    db: DbOption = None,
    name: Annotated[str, typer.Option(help="Saved reward model.")] = "proactive-reward",
    version: Annotated[int | None, typer.Option(help="Model version (default: newest).")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's streams.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Score stored proactive agents' event streams with a reward model: TP/FP/TN/FN per agent."""
    from metrics.embeddings import default_embedder
    from pipa.proactive import artefacts
    from pipa.proactive.scoring import agent_report, score_streams

    store = open_store(db)
    try:
        model = artefacts.load(store, name, version, embedder=default_embedder(store))
    except KeyError as exc:
        console.print(f"[red]error:[/] {exc.args[0]}; train one with `libra proactive train`")
        raise typer.Exit(2) from None
    with staged(quiet) as progress:
        ms, res = score_streams(store, model, agent=agent, progress=lambda d, t: progress("streams", d, t))
    out.print(f"{ms.set_id}: {res.runs_scored} streams scored, {res.runs_skipped} already done")
    rep = agent_report(store, ms.set_id)
    t = Table("agent", "streams", "TP", "FP", "TN", "FN", "precision", "recall", "F1", "accuracy",
              "false alarm")
    for r in rep.itertuples(index=False):
        t.add_row(r.agent, str(r.runs), str(r.tp), str(r.fp), str(r.tn), str(r.fn), _fmt(r.precision),
                  _fmt(r.recall), _fmt(r.f1), _fmt(r.accuracy), _fmt(r.false_alarm))
    out.print(t)
    out.print("ProactiveBench's false alarm is 1 - precision: the share of proposals people would reject.")
