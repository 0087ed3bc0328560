"""PIPA criteria: computed checks, the LLM path through the fake API, profiles, tau-bench."""

from __future__ import annotations

import anthropic
import pytest

from metrics.llm.fake import FakeAnthropic, verdicts_responder
from metrics.llm.client import LLM, LLMConfig
from pipa import checks, profile
from pipa.criteria import (
    OBSERVATION_ALIGNMENT, POLICY_ADHERENCE, STATE_CONSISTENCY, TASK_COMPLETION, TOOL_EFFICIENCY, pipa_metric_set,
    policy_from_run,
)
from pipa.judge import PipaJudge
from pipa.scoring import score_pipa
from traces.ingest import ingest_runs
from traces.model import Run, Step, StepKind

POLICY = "# Shop policy\nYou must confirm before refunding. Never refund orders older than 30 days."


def shop_run(i: int, *, error: bool, invent: bool, reward: float | None) -> Run:
    steps = [
        Step(StepKind.SYSTEM, POLICY),
        Step(StepKind.USER, f"Please refund order ORD{i:04d}."),
        Step(StepKind.THOUGHT, "I should look the order up first."),
        Step(StepKind.TOOL_CALL, "", tool_name="get_order", tool_args={"id": f"ORD{i:04d}"}),
        Step(StepKind.TOOL_RESULT, f'{{"id": "ORD{i:04d}", "total": 40, "days": 3}}', tool_name="get_order"),
        Step(StepKind.TOOL_CALL, "", tool_name="refund", tool_args={"id": f"ORD{i:04d}"}),
        Step(StepKind.TOOL_RESULT, "Error: refund service unavailable" if error else '{"status": "ok"}',
             tool_name="refund", is_error=False),
        Step(StepKind.AGENT, f"Refunded ORD{i:04d}; your confirmation is RF{i:03d}X." if invent
             else f"Your order ORD{i:04d} was refunded."),
    ]
    return Run(native_id=f"shop-{i}", format="chat", source="shop.jsonl", steps=tuple(steps),
               agent="agent-a" if i % 2 else "agent-b", task=f"refund ORD{i:04d}", reward=reward,
               globally_unique_id=True)


RUNS = [shop_run(i, error=i % 3 == 0, invent=i % 4 == 0, reward=None if i == 7 else float(i % 3 != 0))
        for i in range(1, 13)]


def test_tool_calls_pair_with_their_results_and_errors_fail():
    run = shop_run(3, error=True, invent=False, reward=0.0)
    assert checks.tool_calls_with_results(run.steps) == [(3, 4), (5, 6)]
    units = checks.tool_efficiency(run)
    assert [(u, v) for u, v, _ in units] == [(3, 1), (5, -1)]  # the "Error:" text is caught without is_error
    assert "unavailable" in units[1][2]


def test_unsupported_identifiers_are_flagged_only_when_nothing_earlier_has_them():
    made_up = checks.unsupported_identifiers(shop_run(4, error=False, invent=True, reward=1.0))
    assert made_up == [(7, -1, "states identifiers nothing earlier contains: rf004x")]
    grounded = checks.unsupported_identifiers(shop_run(5, error=False, invent=False, reward=1.0))
    assert [(u, v) for u, v, _ in grounded] == [(7, 1)]
    assert checks.identifiers("a 24-hour window, 2024-05-20, HAT069 and mia_li_3668") == {"hat069", "mia_li_3668"}


def test_task_completion_only_from_a_recorded_outcome():
    assert checks.task_completion(shop_run(1, error=False, invent=False, reward=1.0))[0][1] == 1
    assert checks.task_completion(shop_run(1, error=False, invent=False, reward=0.0))[0][1] == -1
    assert checks.task_completion(shop_run(1, error=False, invent=False, reward=None)) == []
    r = Run("x", "chat", "s", outcome="resolved")
    assert checks.recorded_outcome(r) is True


def test_policy_comes_from_the_system_prompt_and_enters_the_rubric():
    assert policy_from_run(RUNS[0]) == POLICY
    ms = pipa_metric_set(POLICY)
    assert "Never refund orders older than 30 days" in ms.get(POLICY_ADHERENCE).explanation
    assert {m.scope for m in ms.metrics} == {"step", "call", "reply", "session"}
    assert pipa_metric_set("other").set_id != ms.set_id
    with pytest.raises(ValueError, match="no PIPA criterion"):
        pipa_metric_set(POLICY, ["nope"])


def test_offline_scores_what_is_computable_and_leaves_the_rest_to_a_judge(mem_store):
    ingest_runs(mem_store, RUNS)
    [(ms, res)] = score_pipa(mem_store, PipaJudge())
    assert res.runs_scored == 12 and ms.provenance["kind"] == "pipa"
    prof = profile.agent_profile(mem_store).set_index(["agent", "metric_id"])
    both = profile.agent_profile(mem_store).groupby("metric_id")[["passed", "units"]].sum()
    # 12 runs x 2 calls; refunds fail in runs 3, 6, 9, 12
    assert both.loc[TOOL_EFFICIENCY].tolist() == [20, 24]
    # replies state identifiers in every run; runs 4, 8, 12 invent one
    assert both.loc[OBSERVATION_ALIGNMENT].tolist() == [9, 12]
    # one run records no outcome: 11 decided, 7 successes
    assert both.loc[TASK_COMPLETION].tolist() == [7, 11]
    for mid in (STATE_CONSISTENCY, POLICY_ADHERENCE):
        assert set(prof.xs(mid, level="metric_id")["status"]) == {"needs a judge"}
    assert mem_store.scalar("SELECT count(*) FROM scores WHERE metric_id = ?", [STATE_CONSISTENCY]) == 0
    # incremental: nothing new to read or score, and the set is still reported, with what it already scored
    [(again, res2)] = score_pipa(mem_store, PipaJudge())
    assert again.set_id == ms.set_id and res2.runs_scored == 0 and res2.runs_up_to_date == res.runs_scored
    rel = profile.reward_relation(mem_store).set_index("metric_id")
    assert rel.loc[TOOL_EFFICIENCY, "r_pb"] > 0.9  # the failing refund is what fails the task here
    assert rel.loc[TASK_COMPLETION, "r_pb"] == pytest.approx(1.0)
    worst = profile.weakest_stage(profile.agent_profile(mem_store))
    assert set(worst["criterion"]) <= {"Task completion", "Observation alignment", "Tool efficiency"}
    chart = profile.profile_chart(profile.agent_profile(mem_store)).to_dict()
    assert chart["facet"]["row"]["field"] == "agent"
    labels = {d["label"] for d in chart["datasets"][next(iter(chart["datasets"]))]}
    assert "needs a judge" in labels


def test_llm_judges_only_what_cannot_be_computed(mem_store):
    ingest_runs(mem_store, RUNS)

    def value(mid, req):
        return -1 if mid == STATE_CONSISTENCY else 1

    def respond(req):
        out = verdicts_responder(value)(req)
        for v in out.get("verdicts", []):
            v["evidence_steps"] = [5] if v["metric_id"] == STATE_CONSISTENCY else []
        return out

    with FakeAnthropic(responder=respond) as fake:
        client = anthropic.Anthropic(api_key="k", base_url=fake.base_url, max_retries=1)
        judge = PipaJudge(LLM(mem_store, LLMConfig(max_tokens=512), client=client))
        [(ms, res)] = score_pipa(mem_store, judge)
        assert res.runs_scored == 12 and len(fake.ledger) == 12
        # the calls are the job's: billed to it, and counted in what `libra score` reports
        assert mem_store.scalar("SELECT count(*) FROM llm_calls WHERE job_id IS NULL") == 0
        assert mem_store.scalar("SELECT count(DISTINCT job_id) FROM llm_calls") == 1
        assert res.cost_usd > 0 and res.cost_usd == pytest.approx(mem_store.scalar("SELECT sum(cost_usd) FROM llm_calls"))
        asked = [set(t["input_schema"]["$defs"]["MetricVerdict"]["properties"]["metric_id"]["enum"])
                 for t in (r["tools"][0] for r in fake.requests)]
        # computed criteria never go to the model; task completion only for the run with no outcome
        assert all(TOOL_EFFICIENCY not in a for a in asked)
        assert sum(TASK_COMPLETION in a for a in asked) == 1
        system = " ".join(b["text"] for b in fake.requests[0]["system"])
        assert "Never refund orders older than 30 days" in system
    rows = mem_store.execute("SELECT rate, value FROM scores WHERE metric_id = ? AND backend = 'pipa-llm'",
                             [STATE_CONSISTENCY])
    # steps in scope: the thought and two tool calls; the judge cited step 5 only
    assert {(round(r, 3), v) for r, v in rows} == {(round(2 / 3, 3), -1)}
    units = mem_store.execute("SELECT unit, value FROM score_units WHERE metric_id = ? AND run_id = ?",
                              [STATE_CONSISTENCY, "chat:shop-1"])
    assert sorted(units) == [(2, 1), (3, 1), (5, -1)]
    prof = profile.agent_profile(mem_store)
    assert set(prof["status"]) == {"scored"}
    assert prof.groupby("metric_id")["backends"].first()[STATE_CONSISTENCY] == ["pipa-llm"]


def test_run_profile_of_one_run(mem_store):
    ingest_runs(mem_store, RUNS[:3])
    score_pipa(mem_store, PipaJudge())
    p = profile.run_profile(mem_store, "chat:shop-3").set_index("metric_id")
    assert p.loc[TOOL_EFFICIENCY, "rate"] == 0.5 and p.loc[STATE_CONSISTENCY, "status"] == "needs a judge"


@pytest.mark.shared
def test_tau_bench_rates_and_relation_to_reward(shared, mem_store):
    from traces.ingest import ingest

    ingest(mem_store, [shared / "tau-bench"])
    [(ms, res)] = score_pipa(mem_store, PipaJudge())
    assert res.runs_scored == 200 and "Airline Agent Policy" in ms.get(POLICY_ADHERENCE).explanation
    rel = profile.reward_relation(mem_store).set_index("metric_id")
    assert 0.85 < rel.loc[TOOL_EFFICIENCY, "rate"] < 0.99
    assert rel.loc[TOOL_EFFICIENCY, "r_pb"] > 0  # failed calls go with failed tasks
    assert rel.loc[TASK_COMPLETION, "rate"] == pytest.approx(84 / 200)


def test_point_biserial_in_duckdb_matches_scipy(mem_store):
    from scipy.stats import pointbiserialr

    ingest_runs(mem_store, RUNS)
    score_pipa(mem_store, PipaJudge())
    runs = profile.run_criteria(mem_store)
    d = runs[(runs.metric_id == TOOL_EFFICIENCY) & runs.reward.notna()]
    r, p = pointbiserialr((d.reward >= 1).astype(int), d.rate)
    rel = profile.reward_relation(mem_store).set_index("metric_id")
    assert rel.loc[TOOL_EFFICIENCY, "r_pb"] == pytest.approx(r) and rel.loc[TOOL_EFFICIENCY, "p"] == pytest.approx(p)
    assert rel.loc[TOOL_EFFICIENCY, "rate_failure"] == pytest.approx(d[d.reward < 1].rate.mean())
