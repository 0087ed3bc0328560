"""`libra proactive`: proactivity reward models (ProactiveBench): train, evaluate, score agents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from libra.cli.common import DataTable, DbOption, fail, figure, open_store, out, QuietOption
from libra.cli.progress import staged

proactive_app = typer.Typer(help="Proactivity reward models (ProactiveBench): train, evaluate, score agents.",
                            no_args_is_help=True)


@proactive_app.command("train")
def proactive_train(
    data: Annotated[Path | None, typer.Argument(help="ProactiveBench reward data (train_data.jsonl); "
                                              "default: the labelled proposals in the store.")] = None,
    db: DbOption = None,
    kind: Annotated[str, typer.Option(help="embedding-lr (fast floor) or finetuned-minilm (CPU fine-tune).")]
    = "embedding-lr",
    name: Annotated[str, typer.Option(help="Artefact name; each training adds a version.")] = "proactive-reward",
    folds: Annotated[int, typer.Option(help="Grouped cross-validation folds reported with the model (0: none).")] = 4,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs.")] = 3,
    quiet: QuietOption = False,
) -> None:
    """Train a reward model, cross-validate it, and save it as a versioned artefact."""
    from libra import proactive

    try:
        with staged(quiet) as progress:
            trained = proactive.train(open_store(db, create=True), data, kind=kind, name=name, folds=folds, epochs=epochs,
                                      progress=progress)
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from None
    manifest, cv = trained.manifest, trained.cv
    out.print(f"saved {manifest['model_id']} ({kind}) at {manifest['path']}; data {manifest['data_hash'][:12]}, "
              f"{trained.proposals} proposals", markup=False)
    if cv:
        _print_metrics("cross-validated (grouped by event stream)", cv["pooled"], cv["accept_all"],
                       cv.get("people"))
        if cv.get("people"):
            out.print("people: each annotator's verdict against the majority of the others "
                      f"({cv['people']['n']} verdicts); a model cannot agree with people more than they do")


def _print_metrics(title: str, m: dict[str, Any], accept_all: dict[str, Any] | None = None,
                   people: dict[str, Any] | None = None) -> None:
    t = DataTable("measure", "reward model", *(["accept everything"] if accept_all else []),
              *(["people"] if people else []), title=title)
    for k in ("accuracy", "precision", "recall", "f1"):
        t.add_row(k, figure(m[k]), *([figure(accept_all[k])] if accept_all else []),
                  *([figure(people[k])] if people else []))
    for c, v in m["categories"].items():
        t.add_row(f"agreement {c} (n={v['n']})", figure(v["agreement"]),
                  *([figure(accept_all["categories"][c]["agreement"])] if accept_all else []),
                  *([""] if people else []))
    out.print(t)


def _score_records(db: str | None, records: Path, out_file: Path | None, name: str, version: int | None) -> None:
    import json

    from libra import proactive

    try:
        rows = proactive.score_records(open_store(db), records, name=name, version=version)
    except KeyError as exc:
        raise fail(f"{exc.args[0]}; train one with `libra proactive train`") from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    if out_file is None:
        for line in lines:
            out.print(line)
        return
    out_file.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    out.print(f"{len(rows)} proposals scored, {sum(r['accept'] for r in rows)} accepted: {out_file}")


@proactive_app.command("eval")
def proactive_eval(
    data: Annotated[Path, typer.Argument(help="Labelled proposals (train_data.jsonl format).")],
    db: DbOption = None,
    name: Annotated[str, typer.Option(help="Saved reward model.")] = "proactive-reward",
    version: Annotated[int | None, typer.Option(help="Model version (default: newest).")] = None,
    against: Annotated[Path | None, typer.Option(
        help="The model's training data: say how many evaluation contexts it also holds.")] = None,
) -> None:
    """ProactiveBench's measures of a saved reward model on labelled proposals.

    The result is called held out only with --against and no shared context;
    grouped cross-validation (`libra proactive train`) stays the headline figure.
    """
    from libra import proactive

    try:
        ev = proactive.evaluate(open_store(db), data, name=name, version=version, against=against)
    except ValueError as exc:
        raise fail(str(exc)) from None
    where = ("held out" if ev.held_out else f"NOT held out: {ev.seen_in_training} of {ev.contexts} contexts "
             "also occur in the training data") if ev.held_out is not None else \
        "not checked against the training data (--against TRAIN)"
    _print_metrics(f"{ev.model_id} on {data.name} ({where})", ev.model, ev.accept_all)


@proactive_app.command("score")
def proactive_score(
    db: DbOption = None,
    name: Annotated[str, typer.Option(help="Saved reward model.")] = "proactive-reward",
    version: Annotated[int | None, typer.Option(help="Model version (default: newest).")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's streams.")] = None,
    records: Annotated[Path | None, typer.Option(
        help="Score the proposal records of this file one by one instead (labels not needed).")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="With --records: write verdicts here as JSON lines.")]
    = None,
    quiet: QuietOption = False,
) -> None:
    """Score stored proactive agents' event streams with a reward model: TP/FP/TN/FN per agent."""
    from libra import proactive

    if records is not None:
        _score_records(db, records, out_file, name, version)
        return

    try:
        with staged(quiet) as progress:
            got = proactive.score(open_store(db), name=name, version=version, agent=agent,
                                  progress=lambda d, t: progress("streams", d, t))
    except KeyError as exc:
        raise fail(f"{exc.args[0]}; train one with `libra proactive train`") from None
    ms, res, rep = got.metric_set, got.summary, got.report
    out.print(f"{ms.set_id}: {res.runs_scored} streams scored, {res.runs_skipped} already done", markup=False)
    t = DataTable("agent", "streams", "TP", "FP", "TN", "FN", "precision", "recall", "F1", "accuracy",
              "false alarm")
    for r in rep.itertuples(index=False):
        t.add_row(r.agent, str(r.runs), str(r.tp), str(r.fp), str(r.tn), str(r.fn), figure(r.precision),
                  figure(r.recall), figure(r.f1), figure(r.accuracy), figure(r.false_alarm))
    out.print(t)
    out.print("ProactiveBench's false alarm is 1 - precision: the share of proposals people would reject.")
