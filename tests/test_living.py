"""Living metrics on the demo corpus: a behaviour people start remarking on in later runs lowers
coverage of new feedback; the proposal adds a metric for it; approving it restores coverage,
on those remarks and on later ones it was not built from."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from typer.testing import CliRunner

import libra
from autolibra.induce import InduceConfig
from libra import accounts
from libra.demo import BASE_TIME, build_demo, generate_runs
from libra.living import coverage_history, new_feedback_coverage, record_coverage
from metrics import sets
from metrics.jobs.alerts import AlertRule, check, firing
from traces.ingest import ingest_runs
from traces.store import Store

PRIVACY = re.compile(r"card|privacy|cvv|payment", re.I)


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """Metrics induced from the demo's feedback; then a month of later runs like the first (the
    control), then a month in which the agents start showing a new behaviour people remark on."""
    store = Store(tmp_path_factory.mktemp("living") / "l.duckdb")
    build_demo(store, n=200, seed=7)
    accounts.add_user(store, "admin", "admin password", "admin")
    accounts.add_user(store, "ann", "annotator password", "annotator")
    res = libra.induce(store, backend="offline", config=InduceConfig(random_state=0), set_id="induced",
                       name="Demo metrics")
    sets.approve(store, "induced", res.metric_set.version, "admin")
    libra.score(store, backend="offline")
    ingest_runs(store, generate_runs(160, seed=20, days_later=40))
    ingest_runs(store, generate_runs(160, seed=21, new_behaviour=True, days_later=80))
    return store


def _period(cov, start_day: int, end_day: int) -> float:
    """Coverage of the remarks written in one period (days after the demo's start)."""
    w = cov.weekly[(cov.weekly["week"] >= BASE_TIME + timedelta(days=start_day - 37))
                   & (cov.weekly["week"] < BASE_TIME + timedelta(days=end_day - 30))]
    return float(w["covered"].sum() / w["remarks"].sum())


@pytest.mark.slow
def test_new_behaviour_lowers_coverage_and_the_approved_proposal_restores_it(watched):
    store = watched
    cov = new_feedback_coverage(store, backend="offline")
    privacy = [a for a in cov.aspects if PRIVACY.search(a.bullet)]
    assert len(privacy) > 40 and cov.evaluation.aspects > 2 * len(privacy)
    # the weekly line falls in the month the new behaviour appears, against the month before
    control, changed = _period(cov, 40, 75), _period(cov, 82, 120)
    assert changed < control - 0.15, (control, changed)
    assert cov.weekly["remarks"].sum() == cov.evaluation.aspects
    assert (cov.weekly["lo"] <= cov.weekly["coverage"]).all() and (cov.weekly["coverage"] <= cov.weekly["hi"]).all()
    # what no metric is about is the new behaviour
    assert cov.reasons["no metric about it"] >= 0.7 * len(privacy)

    p = libra.propose_update(store, backend="offline")
    adds = [i for i, c in enumerate(p.changes) if c.action == "add"]
    about = [i for i in adds if sum(PRIVACY.search(r) is not None for r in p.changes[i].remarks)
             > len(p.changes[i].remarks) / 2]
    assert about, [c.title for c in p.changes]
    assert all(p.changes[i].coverage_delta > 0 for i in about)
    # the metrics for the new behaviour are the changes that cover the most
    best = max(adds, key=lambda i: p.changes[i].coverage_delta)
    assert best in about, [(c.title, round(c.coverage_delta, 3)) for c in p.changes]
    assert p.after.coverage > p.before.coverage + 0.15

    with pytest.raises(libra.approval.ApprovalRefused):
        libra.approve_update(store, p, "ann", accepted=about)
    before_rows = store.execute("SELECT count(*) FROM scores WHERE metric_set_id = 'induced' AND metric_set_version = ?",
                                [p.base.version])[0][0]
    new = libra.approve_update(store, p, "admin", accepted=about, backend="offline")
    assert new.version == p.base.version + 1 and new.provenance["base_version"] == p.base.version
    assert {m.metric_id for m in new.metrics} >= {m.metric_id for m in p.base.metrics}
    # unchanged metrics kept their verdicts; only the added ones were judged
    kept = store.execute(
        "SELECT count(*) FROM scores a JOIN scores b ON a.run_id = b.run_id AND a.metric_id = b.metric_id "
        "AND a.backend = b.backend AND a.focus = b.focus WHERE a.metric_set_id = 'induced' AND b.metric_set_id = "
        "'induced' AND a.metric_set_version = ? AND b.metric_set_version = ? AND a.value = b.value "
        "AND a.created_at = b.created_at", [p.base.version, new.version])[0][0]
    assert kept == before_rows
    added = {p.changes[i].metric.metric_id for i in about}
    judged = store.execute("SELECT DISTINCT metric_id FROM scores WHERE metric_set_id = 'induced' AND "
                           "metric_set_version = ? AND created_at > (SELECT approved_at FROM metric_sets WHERE "
                           "set_id = 'induced' AND version = ?) - INTERVAL 1 SECOND", [new.version, new.version])
    # (the offline judge declines a metric it cannot read from the runs, and says so, rather than guess)
    assert {m for (m,) in judged} and {m for (m,) in judged} <= added

    # the same remarks, now covered; and a later month's remarks the new metrics were not built from
    again = new_feedback_coverage(store, "induced", new.version, since=cov.since, backend="offline")
    # (the suite's hashing vectoriser: +0.15 here; with MiniLM bench/living_demo.py shows 0.36 -> 0.74)
    assert _period(again, 82, 120) > changed + 0.1
    ingest_runs(store, generate_runs(160, seed=33, new_behaviour=True, days_later=120))
    later = new_feedback_coverage(store, backend="offline")
    assert later.version == new.version and later.evaluation.aspects > 80
    assert later.coverage > changed + 0.1, (later.coverage, changed, control)


@pytest.mark.slow
def test_the_scheduled_measurement_draws_a_line_and_fires_the_alert(watched):
    store = watched
    cov = new_feedback_coverage(store, backend="offline")
    record_coverage(store, cov, job="test")
    hist = coverage_history(store, "induced")
    assert hist["remarks"].sum() == cov.evaluation.aspects and set(hist["version"]) == {cov.version}
    rule = AlertRule(name="new feedback covered", metric="new_feedback_coverage", below=0.99, min_runs=5,
                     window_hours=None)
    states = check(store, [rule])
    assert [s.firing for s in states] == [True] and states[0].value == pytest.approx(cov.coverage)
    assert "new feedback covered" in set(firing(store)["rule"])
    ok = AlertRule(name="new feedback covered", metric="new_feedback_coverage", below=0.01, min_runs=5,
                   window_hours=None)
    assert [s.firing for s in check(store, [ok])] == [False]
    assert "new feedback covered" not in set(firing(store)["rule"])


@pytest.mark.slow
def test_cli_coverage_and_update(watched, monkeypatch):
    from libra.cli.main import app

    store = watched
    r = CliRunner().invoke(app, ["metrics", "coverage", "--db", store.path, "--backend", "offline", "--below", "0.99"])
    assert r.exit_code == 1, r.output
    assert "new remarks covered" in r.output
    r = CliRunner().invoke(app, ["metrics", "update", "--db", store.path, "--backend", "offline", "--json"])
    assert r.exit_code == 0, r.output
    assert '"changes"' in r.stdout


@pytest.mark.slow
def test_the_app_draws_the_line_and_an_admin_approves_a_proposal(watched, page_test):
    store = watched
    record_coverage(store, new_feedback_coverage(store, backend="offline"), job="test")
    dash = page_test("dashboards", store, "admin")
    dash.session_state["tab"] = "Induction"  # only the open tab is computed; Induction holds the line
    dash.run()
    assert not dash.exception
    assert any("keep up" in h.value for h in dash.subheader)
    assert len(dash.get("arrow_vega_lite_chart") or dash.get("vega_lite_chart")) >= 1 + 1  # frontier, map or line

    page = page_test("metrics_page", store, "admin").run()
    approved = [o for o in page.selectbox(key="ms-pick").options if "approved" in o and "induced v" in o]
    # the first approved version: the month of new behaviour is sure to need changes to it, whereas a version an
    # earlier test approved may already cover everything (then the app rightly proposes nothing)
    first = min(approved, key=lambda o: int(re.search(r"induced v(\d+)", o).group(1)))
    page.selectbox(key="ms-pick").set_value(first).run()
    page.button(key=next(b.key for b in page.button if b.key and b.key.endswith("-go"))).click().run()
    assert not page.exception
    assert {m.label for m in page.metric} >= {"new remarks", "covered now", "covered with every change"}
    takes = [c for c in page.checkbox if c.key and c.key.endswith("-take")]
    assert takes
    version_before = max(int(v) for v in store.df("SELECT version FROM metric_sets WHERE set_id = 'induced'")["version"])
    if not any(c.value for c in takes):  # additions come ticked; take the first change otherwise
        takes[0].check().run()
    approve = next(b for b in page.button if b.key and b.key.endswith("-approve"))
    assert not approve.disabled
    approve.click().run()
    assert not page.exception
    assert any("approved" in s.value for s in page.success), [e.value for e in page.error]
    assert sets.load(store, "induced").version == version_before + 1

    viewer = page_test("metrics_page", store, "ann").run()
    assert not any(b.key and b.key.endswith("-go") for b in viewer.button)
