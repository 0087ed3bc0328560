"""`libra prefs`: pairwise preferences: queues of pairs, the ranking they give, agreement, judges."""

from __future__ import annotations

from typing import Annotated

import typer

from libra.cli.common import BackendOption, DataTable, DbOption, JsonOption, emit_json, fail, figure, open_store, out

prefs_app = typer.Typer(help="Pairwise preferences: two runs of a task side by side, which is better and why.",
                        no_args_is_help=True)


@prefs_app.command("queue")
def prefs_queue(
    name: Annotated[str, typer.Argument(help="The queue's name.")],
    by: Annotated[str, typer.Option(help="Who creates it.")],
    db: DbOption = None,
    agent: Annotated[list[str] | None, typer.Option(help="Only pairs between these agents (repeat).")] = None,
    pairs: Annotated[int, typer.Option(help="At most this many pairs.", min=1)] = 100,
    k: Annotated[int, typer.Option(help="People per pair.", min=1)] = 2,
) -> None:
    """A pairwise queue: same-task pairs of runs by different agents, sides shuffled; the app shows them side by side."""
    from libra.preferences import pairwise_queue

    try:
        qid = pairwise_queue(open_store(db), name, by, agents=agent, pairs=pairs, k=k)
    except ValueError as exc:
        raise fail(str(exc)) from None
    out.print(qid)


@prefs_app.command("rank")
def prefs_rank(db: DbOption = None, queue: Annotated[str | None, typer.Option(help="Only this queue's.")] = None,
               as_json: JsonOption = False) -> None:
    """Agents by Bradley–Terry strength from people's preferences, with 95% intervals, beside the metric ranking."""
    from libra.preferences import rank

    df = rank(open_store(db), queue_id=queue)
    if df.empty:
        raise fail("no preferences between two agents yet")
    if as_json:
        emit_json(df.to_dict("records"))
        return
    t = DataTable(title="Bradley–Terry ranking from pairwise preferences")
    for c in ("rank", "agent", "strength", "95% interval", "wins", "losses", "ties", "metric score", "metric rank"):
        t.add_column(c)
    for r in df.itertuples(index=False):
        t.add_row(r.rank, r.agent, f"{r.strength:+.2f}", f"[{r.lo:+.2f}, {r.hi:+.2f}]", r.wins, r.losses, r.ties,
                  figure(r.metric_score), r.metric_rank)
    out.print(t)


@prefs_app.command("agreement")
def prefs_agreement(db: DbOption = None, queue: Annotated[str | None, typer.Option(help="Only this queue's.")] = None,
                    backend: BackendOption = "auto", as_json: JsonOption = False) -> None:
    """People's agreement on pairs several labelled, and a pairwise judge's agreement with them beside it."""
    from libra.preferences import agreement, judge

    store = open_store(db)
    a = agreement(store, queue_id=queue)
    try:
        j = judge(store, backend=backend, queue_id=queue)
    except LookupError as exc:
        j = None
        note = str(exc)
    if as_json:
        emit_json({"people": a, "judge": None if j is None else {"backend": j.backend, **j.figures}})
        return
    out.print(f"people: {a.pairs} pairs labelled by two or more; {a.comparisons} person-pairs agree "
              f"{figure(a.rate)} (Krippendorff's alpha {figure(a.alpha)})")
    if j is None:
        out.print(f"judge: {note}", soft_wrap=True)
        return
    f = j.figures
    out.print(f"judge ({j.backend}): agrees with people {figure(f['judge_vs_people'])} over {f['judge_comparisons']} "
              f"labels; people with each other {figure(f['people_vs_people'])}; always the left run "
              f"{figure(f['always_left_vs_people'])}"
              + (f" (fitted on other tasks' preferences, {f['folds']} folds by task)" if f.get("folds") else ""),
              soft_wrap=True)
