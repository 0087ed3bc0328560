"""`libra ground` and `libra locator`: which steps a remark is about, and the fitted locator behind it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from libra.cli.common import DataTable, DbOption, fail, open_store, out, QuietOption
from libra.cli.progress import staged

if TYPE_CHECKING:
    from autolibra.locators import LocatorFit

locator_app = typer.Typer(help="The step locator grounding uses: fit it on people's anchors, list and choose "
                               "versions.", no_args_is_help=True)


def ground_cmd(
    run_id: Annotated[str, typer.Argument(help="The run the remark is about.")],
    text: Annotated[str, typer.Argument(help="The remark, as a person would write it.")],
    db: DbOption = None,
    k: Annotated[int, typer.Option(help="How many steps.", min=1)] = 5,
    focus: Annotated[str | None, typer.Option(help="The actor the remark is about (multi-agent runs).")] = None,
) -> None:
    """Which steps of a run a remark is about, ranked (the locator induction uses)."""
    from libra.grounding import ground

    try:
        ranked = ground(open_store(db), run_id, text, k=k, focus=focus)
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    table = DataTable("step", "p", "kind", "actor", "content", title=f"steps of {run_id} the remark is about")
    for s in ranked:
        table.add_row(f"{s.idx}{' (named)' if s.explicit else ''}", f"{s.probability:.2f}", s.kind, s.actor,
                      s.preview)
    out.print(table)


def _report(fit: LocatorFit) -> None:
    table = DataTable("format", "notes", "default exact", "fitted exact", "default ±1", "fitted ±1", "uses",
                      title=f"locator v{fit.version}: cross-validated by run on {fit.examples} anchored notes"
                            + (" (chosen)" if fit.chosen else ""))
    for fmt, r in sorted(fit.report.items()):
        table.add_row(fmt, str(r["examples"]), f"{r['default_exact']:.3f}", f"{r['fitted_exact']:.3f}",
                      f"{r['default_within1']:.3f}", f"{r['fitted_within1']:.3f}", r["uses"])
    out.print(table)


@locator_app.command("fit")
def fit_cmd(db: DbOption = None, by: Annotated[str | None, typer.Option(help="Who fitted it.")] = None,
            no_choose: Annotated[bool, typer.Option("--no-choose", help="Save it without grounding with it.")]
            = False, quiet: QuietOption = False) -> None:
    """Fit on every note people anchored to steps; per format, keep the fit only where it beats the defaults."""
    from libra.grounding import fit_locator

    try:
        with staged(quiet) as progress:
            fit = fit_locator(open_store(db), by=by, choose=not no_choose,
                              progress=lambda d, t: progress("fit locator", d, t))
    except ValueError as exc:
        raise fail(str(exc)) from None
    _report(fit)


@locator_app.command("list")
def list_cmd(db: DbOption = None) -> None:
    """Every fitted version, with its per-format figures."""
    from libra.grounding import locator_versions

    fits = locator_versions(open_store(db))
    if not fits:
        out.print("no fitted locator: grounding uses the default weights (libra locator fit)")
    for fit in fits:
        _report(fit)


@locator_app.command("choose")
def choose_cmd(version: Annotated[str, typer.Argument(help="A version number, or 'default' for the weights "
                                                           "nothing was fitted on.")], db: DbOption = None) -> None:
    """Ground with this version from now on."""
    from libra.grounding import choose_locator

    if version != "default" and not version.isdigit():
        raise typer.BadParameter("a version number or 'default'", param_hint="VERSION")
    try:
        choose_locator(open_store(db), None if version == "default" else int(version))
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    out.print("grounding uses " + ("the default weights" if version == "default" else f"locator v{version}"))
