"""Fitted step locators (issue 18 §5): fitted per format, kept only where they help, versioned and chosen."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import libra
from autolibra import locators
from autolibra.locator import DEFAULT_WEIGHTS
from libra.cli.main import app
from traces.ingest import ingest_runs
from traces.model import Feedback, Run, Step, StepKind

CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Quito", "Perth", "Dakar", "Hanoi", "Tunis", "Sofia"]


def _chain_run(i: int) -> Run:
    """A fault introduced once and repeated: the note describes it, the first occurrence is the anchor."""
    city, wrong = CITIES[i % 10], CITIES[(i + 3) % 10]
    steps = [Step(StepKind.USER, f"Find the weather in {city}.", actor="human")]
    steps += [Step(StepKind.THOUGHT, "Plan: ask the searcher.", actor="Planner")] * (i % 3)
    first = len(steps)
    steps.append(Step(StepKind.AGENT, f"Searching the weather for {wrong} instead of {city}.", actor="Searcher"))
    for _ in range(3):
        steps.append(Step(StepKind.THOUGHT, f"The searcher reported on {wrong}; continue.", actor="Planner"))
        steps.append(Step(StepKind.AGENT, f"Again the weather for {wrong} instead of {city}, as before, "
                                          f"searching {wrong} weather instead of {city} weather.", actor="Searcher"))
    note = Feedback(author="ann", text=f"The Searcher searched {wrong} weather instead of {city} weather.",
                    steps=(first,))
    return Run(native_id=f"chain-{i}", format="chains", source="t", steps=tuple(steps), feedback=(note,),
               globally_unique_id=True)


def _plain_run(i: int) -> Run:
    city = CITIES[i % 10]
    steps = (Step(StepKind.USER, f"Book a hotel in {city}.", actor="human"),
             Step(StepKind.AGENT, "Looking at hotels.", actor="bot"),
             Step(StepKind.TOOL_CALL, f"book(city='{city}', nights={i % 4 + 1})", actor="bot", tool_name="book"),
             Step(StepKind.AGENT, "Done, booked.", actor="bot"))
    note = Feedback(author="bo", text=f"It booked {i % 4 + 1} nights in {city} without asking", steps=(2,))
    return Run(native_id=f"plain-{i}", format="plain", source="t", steps=steps, feedback=(note,),
               globally_unique_id=True)


@pytest.fixture
def anchored(store):
    ingest_runs(store, [_chain_run(i) for i in range(40)] + [_plain_run(i) for i in range(20)])
    return store


@pytest.mark.slow  # fitting per format on 60 runs takes about 45 s here
def test_a_fit_is_kept_per_format_only_where_it_beats_the_default_weights(anchored):
    fit = libra.fit_locator(anchored, by="ann")
    assert fit.version == 1 and fit.chosen and fit.examples == 60
    chains, plain = fit.report["chains"], fit.report["plain"]
    # the default weights pick the repeat most like the note; fitted, the first occurrence wins
    assert chains["fitted_exact"] > chains["default_exact"] and chains["uses"] == "fitted"
    assert fit.weights["chains"] is not None
    # on a format where fitting does not help, the default weights stay
    if plain["uses"] == "default":
        assert fit.weights["plain"] is None and fit.weights_for("plain") == DEFAULT_WEIGHTS
    assert (plain["fitted_exact"], plain["fitted_within1"]) > (plain["default_exact"], plain["default_within1"]) \
        or plain["uses"] == "default"
    assert fit.weights_for("never-seen") == DEFAULT_WEIGHTS
    # saved as JSON, loaded back the same; grounding uses the chosen version
    back = locators.load(anchored)
    assert back.version == 1 and back.weights == fit.weights and back.report == fit.report
    run_id = "chains:chain-1"
    first = next(f.steps[0] for f in _chain_run(1).feedback)
    note = next(f.text for f in _chain_run(1).feedback)
    assert libra.ground(anchored, run_id, note, k=1)[0].idx == first
    libra.choose_locator(anchored, None)
    assert locators.load(anchored) is None  # back to the default weights
    with pytest.raises(KeyError, match="no fitted locator version 7"):
        libra.choose_locator(anchored, 7)


def test_the_locator_commands_fit_list_and_choose(store):
    anchored = store
    ingest_runs(store, [_chain_run(i) for i in range(12)] + [_plain_run(i) for i in range(4)])
    runner = CliRunner()
    r = runner.invoke(app, ["locator", "fit", "--db", anchored.path, "-q"])
    assert r.exit_code == 0 and "chains" in r.output and "16 anchored notes" in r.output, r.output
    r = runner.invoke(app, ["locator", "list", "--db", anchored.path])
    assert r.exit_code == 0 and "v1" in r.output and "(chosen)" in r.output
    assert runner.invoke(app, ["locator", "choose", "default", "--db", anchored.path]).exit_code == 0
    assert "(chosen)" not in runner.invoke(app, ["locator", "list", "--db", anchored.path]).output
    bad = runner.invoke(app, ["locator", "choose", "9", "--db", anchored.path])
    assert bad.exit_code != 0 and "no fitted locator version 9" in bad.output


def test_fitting_with_no_anchored_note_says_so(mem_store):
    ingest_runs(mem_store, [Run(native_id="x", format="plain", source="t", steps=(Step(StepKind.AGENT, "hi"),),
                                globally_unique_id=True)])
    with pytest.raises(ValueError, match="no note is anchored"):
        libra.fit_locator(mem_store)


@pytest.mark.slow  # fitting per format on 60 runs takes about 45 s here
def test_a_tampered_locator_row_is_refused_by_name_and_grounding_keeps_the_defaults(anchored):
    """The store may be shared: a row someone else wrote is data, checked field by field, never trusted."""
    libra.fit_locator(anchored, by="ann")
    anchored.write(lambda con: con.execute(
        """UPDATE step_locators SET weights = '{"chains": {"sim": "__import__(''os'')"}}'"""))
    with pytest.raises(locators.LocatorRejected, match=r"version 1: field 'weights.chains.sim'"):
        locators.load(anchored)
    # grounding goes on with the default weights, as if nothing were chosen
    note = next(f.text for f in _chain_run(1).feedback)
    assert [s.idx for s in libra.ground(anchored, "chains:chain-1", note, k=3)]
    assert locators.versions(anchored) == []
    report = libra.check(anchored)
    found = next(f for f in report.findings if f.name == "fitted locators that cannot be read")
    assert found.count == 1 and "weights.chains.sim" in found.examples[0] and not report.ok
    anchored.write(lambda con: con.execute("UPDATE step_locators SET weights = '[1, 2]'"))
    with anchored.connection() as con:
        n, why = locators.rejected(con)
    assert n == 1 and "is not a JSON object" in why[0]
