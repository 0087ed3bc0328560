"""Release comparison: finds what the demo generator changed between versions, and nothing else."""

from __future__ import annotations

import json
import numpy as np
import pytest
from typer.testing import CliRunner

import libra
from libra.cli.main import app
from libra.demo import MIXED_RELEASE, TRAITS, build_demo, latent_traits
from metrics import sets
from metrics.compare import _diff_stats, _paired_stats, holm
from metrics.definitions import Metric, MetricSet
from metrics.judges.recorded import RecordedJudge
from metrics.scoring import score_runs
from traces.store import Store

A, B = "travel-concierge@v1", "travel-concierge@v2"


def _traits_set() -> MetricSet:
    return MetricSet("traits", 1, "Demo behaviours", tuple(
        Metric(t, t.replace("_", " "), f"Did the agent get {t} right?") for t in TRAITS))


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("cmp") / "c.duckdb")
    build_demo(store, n=720, seed=11, profiles=MIXED_RELEASE)
    saved = sets.save(store, _traits_set(), approved_by="admin")
    score_runs(store, saved, RecordedJudge(latent_traits(store)))
    return store


def _changed(alpha_gap: float = 0.2) -> tuple[set[str], set[str], set[str]]:
    p1, p2 = MIXED_RELEASE[("travel-concierge", "v1")], MIXED_RELEASE[("travel-concierge", "v2")]
    better = {t for t in TRAITS if p2[t] - p1[t] >= alpha_gap}
    worse = {t for t in TRAITS if p1[t] - p2[t] >= alpha_gap}
    same = {t for t in TRAITS if p1[t] == p2[t]}
    return better, worse, same


def test_the_comparison_finds_the_generators_improvements_and_regression_and_nothing_else(scored):
    c = libra.compare(scored, A, B)
    better, worse, same = _changed()
    assert worse and same and better, "the demo must put a regression and an unchanged behaviour between versions"
    assert set(c.improved) == better
    assert set(c.regressed) == worse
    assert not set(c.improved + c.regressed) & same
    for m in c.metrics:
        assert m.lo <= m.diff <= m.hi
        assert m.p <= m.p_adjusted <= 1
        if m.significant:
            assert m.examples, m.metric_id
            for e in m.examples:  # each example shows the change in its direction
                assert (e.rate_b > e.rate_a) == (m.diff > 0)
    runs_a = set(scored.df("SELECT run_id FROM runs WHERE agent = ?", [A])["run_id"])
    ex = [e for m in c.metrics for e in m.examples]
    assert ex and all(e.run_a in runs_a and e.run_b not in runs_a for e in ex)


@pytest.mark.slow  # a statistical property over twelve comparisons
def test_releases_that_do_not_differ_are_rarely_flagged(scored):
    """A/A: one release's runs split at random into two agents; over twelve splits the
    Holm-corrected comparison flags any metric in few of them (alpha = 0.05 per split)."""
    ids = scored.df("SELECT run_id FROM runs WHERE agent = ? ORDER BY run_id", [B])["run_id"].tolist()
    rng = np.random.default_rng(3)
    flagged = 0
    for i in range(12):
        half = list(rng.choice(ids, size=len(ids) // 2, replace=False))
        name = f"{B}-split{i}"
        scored.execute("UPDATE runs SET agent = ? WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [name, half])
        scored.execute("UPDATE scores SET agent = ? WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [name, half])
        try:
            c = libra.compare(scored, B, name, set_id="traits", seed=i)
            assert len(c.metrics) == len(TRAITS)
            flagged += bool(c.improved or c.regressed)
        finally:
            scored.execute("UPDATE runs SET agent = ? WHERE agent = ?", [B, name])
            scored.execute("UPDATE scores SET agent = ? WHERE agent = ?", [B, name])
    assert flagged <= 2


def test_holm_adjusts_in_step_down_order():
    assert holm(np.array([0.01, 0.04, 0.03])).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm(np.array([0.2, 0.9, 0.3])).tolist() == pytest.approx([0.6, 0.9, 0.6])  # monotone, capped at 1


def test_pairing_by_task_finds_a_small_steady_gain_that_task_difficulty_hides():
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0.05, 0.85, 30)
    a, b = difficulty, difficulty + 0.08 + rng.normal(0, 0.01, 30)
    _, lo_u, _, p_unpaired = _diff_stats(a, b, np.random.default_rng(1))
    d, lo, hi, p_paired = _paired_stats(b - a, np.random.default_rng(1))
    assert p_unpaired > 0.05 and lo_u < 0
    assert p_paired < 0.001 and 0.07 < lo <= d <= hi < 0.09


def test_reports_show_names_from_feedback_as_text(scored):
    store = scored
    evil = MetricSet("evil", 1, "Evil", (Metric("m1", "<script>alert(1)</script> | *bold* [x](http://e.vil)",
                                                "Did it?"),))
    saved = sets.save(store, evil, approved_by="admin")
    traits = {rid: {"m1": t.get("confirmation", 0)} for rid, t in latent_traits(store).items()}
    travel = [r for (r,) in store.execute("SELECT run_id FROM runs WHERE agent IN (?, ?)", [A, B])]
    score_runs(store, saved, RecordedJudge(traits), run_ids=travel)
    c = libra.compare(store, A, B, set_id="evil")
    page = libra.compare_report(c, "html")
    assert "<script>" not in page and "&lt;script&gt;" in page
    md = libra.compare_report(c, "markdown")
    assert "<script>" not in md.replace("\\<script\\>", "") and "\\*bold\\*" in md and "\\[x\\]" in md
    assert md.count("\n| ") >= 2  # the header and the one metric's row: the name's "|" did not split a cell


def test_cli_compare_prints_the_table_writes_reports_and_fails_on_a_regression(scored, tmp_path):
    db = scored.path
    runner = CliRunner()
    r = runner.invoke(app, ["compare", A, B, "--db", db, "--set", "traits"])
    assert r.exit_code == 1, r.output  # v2 regressed on communication
    assert "worse" in r.output and "better" in r.output and "communication" in r.output
    r = runner.invoke(app, ["compare", B, A, "--db", db, "--set", "traits", "--report", "markdown",
                            "-o", str(tmp_path / "r.md")])
    text = (tmp_path / "r.md").read_text()
    assert r.exit_code == 1 and text.startswith("## travel\\-concierge@v1 against") and "paired" not in text.lower()
    r = runner.invoke(app, ["compare", A, B, "--db", db, "--set", "traits", "--json"])
    doc = json.loads(r.stdout)
    assert {m["metric_id"] for m in doc["metrics"] if m["significant"]} >= {"communication"}
    r = runner.invoke(app, ["compare", A, "nobody@v9", "--db", db])
    assert r.exit_code == 2 and "no runs of agent" in r.output


def test_the_releases_page_shows_the_verdicts_chart_examples_and_reports(scored, page_test):
    from libra import accounts

    if not accounts.any_users(scored):
        accounts.add_user(scored, "ana", "correct horse", "annotator")
    at = page_test("releases", scored, "ana")
    at.query_params["ra"], at.query_params["rb"] = A, B
    at = at.run()
    assert not at.exception
    at.selectbox(key="rel-set").select_index(
        [i for i, o in enumerate(at.selectbox(key="rel-set").options) if "traits v" in o][0]).run()
    assert not at.exception
    values = {m.label: m.value for m in at.metric}
    better, worse, _ = _changed()
    assert values == {"better": str(len(better)), "worse": str(len(worse)),
                      "no clear change": str(len(TRAITS) - len(better) - len(worse))}
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    assert len(at.get("download_button")) == 2
    assert any("beside B" in m.value for m in at.markdown)
