"""Metric induction: grounding, clustering, metrics, meta-evaluation, metric sets, CLI."""

from __future__ import annotations

import re
from dataclasses import replace

from collections import Counter


import anthropic
import pytest
from typer.testing import CliRunner

import libra
from autolibra.aspects import Aspect, load_aspects
from autolibra.evaluation import Trait, meta_evaluate
from autolibra.grounding import LLMGrounder, OfflineGrounder
from autolibra.locator import StepLocator, explicit_steps
from autolibra.signs import detect_sign, split_bullets, topic_text
from autolibra.induce import InduceConfig, induce
from autolibra.naming import LLMNamer, OfflineNamer
from libra.cli.main import app
from metrics import sets
from metrics.definitions import Example, Metric, MetricSet
from metrics.llm.fake import FakeAnthropic
from metrics.llm.client import LLM, LLMConfig
from metrics.judges.trained import TrainedJudge
from libra.demo import build_demo
from traces.model import Step, StepKind
from conftest import fresh_location  # noqa: I001 - the suite's own helpers



@pytest.fixture(scope="module")
def demo(request, module_backend, tmp_path_factory):
    from traces.store import Store

    s = Store(fresh_location(request, module_backend, tmp_path_factory.mktemp("demo"), "demo"))
    build_demo(s, n=120)
    return s


def test_split_bullets_and_sign():
    assert split_bullets("- Good summary.\n- It looped on the search.") == ["Good summary.", "It looped on the search."]
    assert split_bullets("Asked for the date. Then booked without confirming!") == \
        ["Asked for the date.", "Then booked without confirming!"]
    cases = {
        "No secrets were revealed": 1, "no social rules were broken": 1, "No knowledge gain": -1,
        "Kept calling the tool with the same arguments after it failed": -1,
        "Noticed the request had no travel date and asked the user.": 1,
        "Should have asked which order the user meant.": -1, "Asked for the missing date instead of guessing.": 1,
        "Told the user a fact the tools never returned; hallucinated.": -1, "Clear, short final summary.": 1,
    }
    assert {t: detect_sign(t) for t in cases} == cases


def test_topic_text_removes_verdict_names_and_slots():
    assert topic_text("No secrets were revealed by Sasha Ramirez", ["Sasha Ramirez"]) == "secrets were revealed by the agent"
    assert "the tool" in topic_text("called search_flights twice for $250", []) and "$" not in \
        topic_text("called search_flights twice for $250", [])


def test_explicit_references_and_locator(embedder):
    steps = [Step(kind=StepKind.USER, content="book a flight"),
             Step(kind=StepKind.TOOL_CALL, tool_name="search_flights", tool_args={"date": "x"}),
             Step(kind=StepKind.TOOL_RESULT, content="Error: invalid date", tool_name="search_flights", is_error=True),
             Step(kind=StepKind.AGENT, content="Your flight LB123 is booked.", actor="Planner")]
    assert explicit_steps("see step 2 and steps 0-1, also [3]", 4) == [0, 1, 2, 3]
    loc = StepLocator(embedder)
    assert loc.locate("at step 1 it used the wrong date", steps) == [1]
    assert loc.locate("the search_flights call failed with an invalid date", steps)[0] in (1, 2)
    assert loc.locate('it said "LB123 is booked" without checking', steps) == [3]


@pytest.mark.slow  # measures a fitted locator's quality (about 45 s here)
def test_locator_learns_from_anchored_feedback(embedder, demo):
    from traces.annotation.feedback import load as load_feedback
    from traces.export import load_runs

    fb = [f for f in load_feedback(demo) if f.steps and len(split_bullets(f.text)) == 1]
    runs = load_runs(demo, [f.run_id for f in fb])
    ex = [(f.text, runs[f.run_id].steps, list(f.steps), None) for f in fb]
    half = len(ex) // 2
    fitted = StepLocator(embedder).fit(ex[:half])
    default = StepLocator(embedder)

    def hit(loc):
        return sum(loc.locate(t, s)[0] in g for t, s, g, _ in ex[half:]) / len(ex[half:])

    assert fitted.n_examples_ == half and set(fitted.coef_) >= {"sim", "explicit", "actor"}
    # 13 of 20 held-out notes before the first-introduction features, 12 with them (Who&When gained
    # 0.17 -> 0.19 exact); the per-format guard below is what keeps a format from getting worse
    assert hit(fitted) > hit(default) and hit(fitted) >= 0.6
    from autolibra.locators import AnchoredNote, fit_per_format

    fit = fit_per_format([AnchoredNote("libra", f.run_id, t, s, tuple(g)) for f, (t, s, g, _) in zip(fb, ex, strict=True)],
                         embedder)
    r = fit.report["libra"]
    kept = (r["fitted_exact"], r["fitted_within1"]) if r["uses"] == "fitted" else \
        (r["default_exact"], r["default_within1"])
    assert kept >= (r["default_exact"], r["default_within1"])


def test_meta_evaluation_arithmetic():
    def asp(i, run, sign):
        return Aspect(f"a{i}", f"f{i}", run, 0, "b", "b", sign, metadata={"topic": "b"})

    aspects = [asp(1, "r1", 1), asp(2, "r1", -1), asp(3, "r2", 1), asp(4, "r2", 1)]
    traits = [Trait("r1", "m1", 1), Trait("r1", "m2", -1), Trait("r1", "m3", 0), Trait("r2", "m1", -1),
              Trait("r2", "m2", 1), Trait("r3", "m1", 1)]  # r3 has no feedback: out of scope
    ev = meta_evaluate(aspects, traits, [("a1", 0), ("a2", 1), ("a3", 4), ("a4", 4)])
    assert ev.coverage == 1.0
    assert ev.traits == 4 and ev.traits_matched == 3
    assert ev.redundancy == pytest.approx(1 / 4)
    assert ev.redundancy_all == pytest.approx(1 - 3 / 5)
    # the search keeps only signed traits and counts the verdicts in scope apart: the same evaluation
    from autolibra.evaluation import traits_of, verdicts_about
    from metrics.judges.base import Judgement, Verdict

    judged = [Judgement(r, tuple(Verdict(t.metric_id, t.value) for t in traits if t.view == r)) for r in ("r1", "r2", "r3")]
    signed = traits_of(judged, [None] * 3, signed_only=True)
    assert [t.value for t in signed] == [1, -1, -1, 1, 1] and verdicts_about(aspects, judged, [None] * 3) == 5
    again = meta_evaluate(aspects, signed, [("a1", 0), ("a2", 1), ("a3", 3), ("a4", 3)],
                          verdicts=verdicts_about(aspects, judged, [None] * 3))
    assert again.row() == ev.row() and (again.traits_matched, again.verdicts) == (ev.traits_matched, ev.verdicts)


def test_induce_offline_on_demo_recovers_the_behaviours(embedder, demo):
    res = libra.induce(demo, backend="offline", set_id="demo-test",
                       config=InduceConfig(min_cluster_sizes=(5, 8), merge_thresholds=(None, 0.65)))
    ms = res.metric_set
    assert ms.version == 1 and ms.status == "draft" and 5 <= len(ms.metrics) <= 40
    assert res.chosen.heldout.coverage > 0.5
    assert len({m.name for m in ms.metrics}) == len(ms.metrics)
    # clusters follow the behaviour people talked about, not the wording
    purity = []
    for m in ms.metrics:
        c = m.metadata["cluster"]
        traits = Counter(a.metadata["label"]["trait"] for a, lab in zip(res.train_aspects, res.chosen.labels,
                                                                       strict=True) if lab == c and "label" in a.metadata)
        purity.append(traits.most_common(1)[0][1] / sum(traits.values()))
    assert sum(purity) / len(purity) > 0.8
    # every example is a person's words, linked to their feedback and run
    fb_ids = {f for f, in demo.execute("SELECT feedback_id FROM feedback")}
    for m in ms.metrics:
        for e in m.good + m.bad:
            assert e.feedback_id in fb_ids and e.run_id
    assert set(res.frontier()["split"]) == {"train", "held-out"} and res.frontier()["chosen"].any()
    assert ms.provenance["heldout"]["coverage"] == res.chosen.heldout.coverage
    assert sets.load(demo, "demo-test").metrics == ms.metrics
    assert len(res.aspects_frame()) == len(res.train_aspects)


def test_grounding_is_cached_between_runs(embedder, demo):
    class Counting(OfflineGrounder):
        calls = 0

        def ground(self, fb, run):
            Counting.calls += 1
            return super().ground(fb, run)

    g = Counting(StepLocator(embedder))
    n = len(load_aspects(demo, "offline"))
    res = induce(demo, grounder=g, namer=OfflineNamer(), embedder=embedder, judge_factory=lambda: TrainedJudge(embedder),
                 config=InduceConfig(min_cluster_sizes=(8,), merge_thresholds=(None,), absorb_thresholds=(None,)),
                 save=False)
    assert Counting.calls == 0 and n > 0 and res.metric_set.metrics


def test_metric_sets_versions_edits_approval_yaml(mem_store):
    ms = MetricSet("s1", 0, "set", (
        Metric("a", "Alpha", "about a", good=(Example("did a", "r1", (1, 2), "f1"),)),
        Metric("b", "Beta", "about b", bad=(Example("missed b"),)),
        Metric("c", "Gamma", "about c")))
    v1 = sets.save(mem_store, ms)
    v2 = sets.edit_metric(mem_store, v1, "a", name="Alpha renamed", by="ana")
    v3 = sets.merge_metrics(mem_store, v2, ["b", "c"], "Beta and gamma", by="ana")
    v4 = sets.delete_metric(mem_store, v3, "a", by="bo")
    assert [v.version for v in (v1, v2, v3, v4)] == [1, 2, 3, 4]
    assert sets.load(mem_store, "s1", 2).get("a").name == "Alpha renamed"
    assert [m.metric_id for m in sets.load(mem_store, "s1", 3).metrics] == ["a", "b"]
    assert sets.load(mem_store, "s1", 3).get("b").bad == (Example("missed b"),)
    assert sets.load(mem_store, "s1", 1).get("a").name == "Alpha"  # history kept
    sets.approve(mem_store, "s1", 4, by="chief")
    assert [m.version for m in sets.approved(mem_store)] == [4]
    back = sets.from_yaml(sets.to_yaml(sets.load(mem_store, "s1", 2)))
    assert back.metrics == sets.load(mem_store, "s1", 2).metrics
    with pytest.raises(ValueError, match="x.yaml: field metrics.0.name"):
        sets.from_yaml("set_id: s\nname: n\nmetrics:\n  - id: a\n    explanation: e\n", "x.yaml")
    with pytest.raises(ValueError, match="x.yaml line 2"):
        sets.from_yaml("set_id: s\n  name: [unclosed\n", "x.yaml")
    with pytest.raises(ValueError, match="ids repeat"):
        sets.from_yaml("set_id: s\nname: n\nmetrics:\n  - {id: a, name: A, explanation: e}\n"
                       "  - {id: a, name: B, explanation: e}\n", "x.yaml")


def test_llm_backends_run_the_same_pipeline(embedder, store):
    build_demo(store, n=40)

    def responder(req):
        tool = req["tool_choice"]["name"]
        text = req["messages"][0]["content"]
        if tool == "record_aspects":
            fb = text.split("<data-feedback-")[1].split(">\n", 1)[1].split("\n</data-feedback")[0]
            return {"aspects": [{"bullet": b, "behaviour": b, "sign": detect_sign(b), "steps": [1]}
                                for b in split_bullets(fb)]}
        if tool == "define_metric":
            first = text.split("0. (")[1].split(") ", 1)[1].split("\n")[0]
            return {"name": "Metric about " + first[:40], "explanation": "Scripted.", "good": [0], "bad": [1]}
        if tool == "record_verdicts":
            defs = next(iter(req["tools"][0]["input_schema"]["$defs"].values()))
            p = defs["properties"]["metric_id"]
            ids = p.get("enum") or [p["const"]]
            return {"verdicts": [{"metric_id": i, "value": 1, "evidence_steps": [0], "reason": "r"} for i in ids]}
        return {"matches": []}

    with FakeAnthropic(responder=responder) as fake:
        client = anthropic.Anthropic(api_key="k", base_url=fake.base_url, max_retries=1)
        llm = LLM(store, LLMConfig(max_tokens=512, concurrency=4), client=client)
        res = induce(store, grounder=LLMGrounder(llm), namer=LLMNamer(llm), embedder=embedder,
                     judge_factory=lambda: TrainedJudge(embedder), config=InduceConfig(min_cluster_sizes=(5,),
                     merge_thresholds=(0.75,), absorb_thresholds=(None,), split_mixed=(False,)), set_id="llm-set")
        purposes = Counter(r["tool_choice"]["name"] for r in fake.requests)
    assert purposes["record_aspects"] == store.scalar("SELECT count(*) FROM feedback")
    assert purposes["define_metric"] == len(res.metric_set.metrics) > 0
    assert all(m.name.startswith("Metric about") for m in res.metric_set.metrics)
    assert res.metric_set.provenance["grounding"] == "llm"
    assert store.scalar("SELECT count(*) FROM llm_calls WHERE purpose = 'ground'") > 0


def test_cli_induce_metrics_and_score(tmp_path, location):
    runner = CliRunner()
    db = location
    assert runner.invoke(app, ["demo", "build", "--db", db, "--runs", "80"]).exit_code == 0
    r = runner.invoke(app, ["induce", "--db", db, "-q", "--backend", "offline", "--facets", "sometimes"])
    assert r.exit_code == 2 and "auto, always or never" in r.output
    r = runner.invoke(app, ["induce", "--db", db, "--backend", "offline", "--min-cluster-size", "8"])
    assert r.exit_code == 0, r.output
    assert "held-out" in r.output and "coverage" in r.output and "facet" in r.output
    # progress by stage, off a terminal as dated lines
    for stage in ("embed", "cluster", "name", "fit judge", "evaluate", "search"):
        assert f"{stage}: " in r.output, stage
    # quiet: no progress, one line that says what was made
    q = runner.invoke(app, ["induce", "--db", db, "-q", "--backend", "offline", "--min-cluster-size", "8",
                            "--facets", "never", "--set-id", "quiet-set"])
    assert q.exit_code == 0, q.output
    lines = [line for line in q.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and re.match(r"quiet-set v1: \d+ metrics from [\d,]+ aspects; held-out coverage "
                                        r"0\.\d{3}, redundancy 0\.\d{3}; \d+ candidates \(\d+ distinct\) in ", lines[0]), q.stdout
    r = runner.invoke(app, ["metrics", "list", "--db", db])
    assert "induced" in r.output
    y = tmp_path / "set.yaml"
    assert runner.invoke(app, ["metrics", "export", "induced", str(y), "--db", db]).exit_code == 0
    r = runner.invoke(app, ["metrics", "import", str(y), "--db", db, "--by", "ana"])
    assert "v2" in r.output
    assert runner.invoke(app, ["score", "--db", db, "-q"]).exit_code == 2  # nothing approved yet
    approve = ["metrics", "approve", "induced", "2", "--db", db, "--by"]
    r = runner.invoke(app, [*approve, "alice"], env={"LIBRA_PASSWORD": "libra-demo"})  # an annotator
    assert r.exit_code == 1 and "only an admin approves" in r.output
    r = runner.invoke(app, [*approve, "admin"], env={"LIBRA_PASSWORD": "not the password"})
    assert r.exit_code == 1 and "cannot approve" in r.output
    r = runner.invoke(app, [*approve, "admin"], env={"LIBRA_PASSWORD": "libra-admin"})  # the demo's admin
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["score", "--db", db, "-q", "--backend", "offline"])
    assert r.exit_code == 0, r.output
    assert "80 runs scored" in r.output
    r = runner.invoke(app, ["score", "--db", db, "-q", "--backend", "offline"])
    assert "0 runs scored" in r.output

def test_past_the_sample_size_the_search_judges_candidates_on_a_sample_and_the_chosen_on_all(demo, embedder):
    """Above `search_aspects`, each candidate is judged on the remarks of a sample of runs and the grid is
    searched coordinate-wise; the chosen set is then judged on every remark, and the provenance says so."""
    from autolibra.induce import search_sample

    cfg = InduceConfig(min_cluster_sizes=(5, 8), merge_thresholds=(None, 0.65), absorb_thresholds=(None, 0.5),
                       split_mixed=(False, True), search_aspects=60)
    res = induce(demo, grounder=OfflineGrounder(StepLocator(embedder)), namer=OfflineNamer(), embedder=embedder,
                 judge_factory=lambda: TrainedJudge(embedder), config=cfg, save=False)
    # sizes x merging first (4), then the other three absorb/facet options at the best of those
    assert len(res.candidates) == 4 + 3
    tried = {(c.params["min_cluster_size"], c.params["merge_at"]) for c in res.candidates[4:]}
    assert len(tried) == 1
    sample_idx, held_sample = search_sample(res.train_aspects, res.heldout_aspects, cfg)
    runs_in_sample = {res.train_aspects[i].run_id for i in sample_idx}
    assert 60 <= len(sample_idx) < len(res.train_aspects)
    # whole runs: every remark of a sampled run is in the sample
    assert all(a.run_id not in runs_in_sample or i in set(sample_idx) for i, a in enumerate(res.train_aspects))
    assert 0 < len(held_sample) < len(res.heldout_aspects)
    others = [c for c in res.candidates if c is not res.chosen]
    assert all(c.evaluated_on == len(sample_idx) for c in others)
    assert res.chosen.evaluated_on is None and res.chosen.train.aspects == len(res.train_aspects)
    assert res.chosen.heldout.aspects == len(res.heldout_aspects)
    assert res.metric_set.provenance["search_sample"] == len(sample_idx)
    # below the size, the whole grid on everything, as before
    small = induce(demo, grounder=OfflineGrounder(StepLocator(embedder)), namer=OfflineNamer(), embedder=embedder,
                   judge_factory=lambda: TrainedJudge(embedder), config=replace(cfg, search_aspects=None), save=False)
    assert len(small.candidates) == 16 and all(c.evaluated_on is None for c in small.candidates)
