"""Every importer on every shared file: formats detected, gold labels kept."""

from __future__ import annotations

import json

import pytest

from traces import importers
from traces.importers.base import Source
from traces.ingest import TRACE_SUFFIXES, ingest

pytestmark = pytest.mark.shared

# Files in ../shared/data that are not agent traces (predictions, patches, split lists).
NOT_TRACES = {"swe-agent/all_preds.jsonl", "openhands/multi_swe_bench_patch.jsonl",
              "proactivebench/test_data/splits.json", "adp/webarena_successful/sample_raw.json"}

EXPECTED_FORMAT = {
    "otel-genai": "otel-spans", "tau-bench": "chat", "who-and-when": "who-and-when",
    "sotopia-pi-human-eval": "sotopia", "proactivebench": "proactivebench", "inspect": "inspect",
    "openhands": "openhands", "swe-agent": "swe-agent",
}


def test_every_trace_file_is_recognised(shared):
    for f in sorted(shared.rglob("*")):
        if not f.is_file() or f.suffix.lower() not in TRACE_SUFFIXES:
            continue
        rel = str(f.relative_to(shared))
        imp = importers.detect(Source(name=str(f), path=f))
        if rel in NOT_TRACES:
            assert imp is None, f"{rel} is not a trace but {imp.name} claims it"
            continue
        assert imp is not None, f"no importer recognises {rel}"
        top = rel.split("/")[0]
        if top in EXPECTED_FORMAT:
            assert imp.name == EXPECTED_FORMAT[top], rel
        elif top == "adp":
            assert imp.name == ("adp" if f.name == "sample_std.json" else "chat"), rel


def test_tau_bench_keeps_reward_policy_and_gold_actions(shared, mem_store):
    s = ingest(mem_store, [shared / "tau-bench"])
    assert (s.runs_added, s.quarantined) == (200, 0)
    assert mem_store.scalar("SELECT count(*) FROM runs WHERE reward = 1") == 84
    assert mem_store.scalar("SELECT count(*) FROM runs WHERE outcome = 'success'") == 84
    gold = json.loads(mem_store.scalar("SELECT gold FROM runs LIMIT 1"))
    assert gold["actions"] and "user_instruction" in gold
    first = mem_store.execute("SELECT kind, content FROM steps WHERE idx = 0 LIMIT 1")[0]
    assert first[0] == "system" and "Airline Agent Policy" in first[1]
    # every tool call has a result with the call's tool name, and errors are flagged
    calls = mem_store.scalar("SELECT count(*) FROM steps WHERE kind = 'tool_call'")
    results = mem_store.scalar("SELECT count(*) FROM steps WHERE kind = 'tool_result' AND tool_name IS NOT NULL")
    assert calls == results == 1164
    assert mem_store.scalar("SELECT count(*) FROM steps WHERE is_error") == 73


def test_who_and_when_mistake_step_is_a_step_index(shared, mem_store):
    s = ingest(mem_store, [shared / "who-and-when"])
    assert s.runs_added == 58 and s.feedback == 58
    rows = mem_store.execute(
        "SELECT r.run_id, CAST(json_extract(r.gold, '$.mistake_step') AS INT), r.n_steps, "
        "json_extract_string(r.gold, '$.mistake_agent') FROM runs r")
    for run_id, step, n, _agent in rows:
        assert 0 <= step < n
        actor = mem_store.scalar("SELECT actor FROM steps WHERE run_id = ? AND idx = ?", [run_id, step])
        assert actor is not None
    # the annotated agent is the actor of the annotated step in most logs
    agree = sum(agent == mem_store.scalar("SELECT actor FROM steps WHERE run_id = ? AND idx = ?", [r, st])
                for r, st, _, agent in rows)
    assert agree / len(rows) > 0.8
    # the reason stays unanchored (finding its step is what grounding is measured on), but says which
    # step the annotators named, so the app shows it about that step and not "on the whole run"
    named = mem_store.execute("SELECT f.steps, CAST(json_extract(f.metadata, '$.source_step') AS INT), "
                              "CAST(json_extract(r.gold, '$.mistake_step') AS INT) FROM feedback f JOIN runs r "
                              "USING (run_id)")
    assert all(steps == [] and source == gold for steps, source, gold in named) and len(named) == 58


def test_sotopia_ratings_become_feedback_by_rater(shared, mem_store):
    s = ingest(mem_store, [shared / "sotopia-pi-human-eval"])
    # 141 rating rows; two episodes carry no conversation and are quarantined with the reason
    assert s.records == 141 and s.quarantined == 2
    assert s.runs_added == 69
    assert mem_store.scalar("SELECT count(DISTINCT author) FROM feedback") > 10
    fb = mem_store.execute("SELECT run_id, text, steps, metadata FROM feedback LIMIT 40")
    for run_id, text, steps, meta in fb:
        meta = json.loads(meta)
        assert len(meta["bullets"]) == text.count("\n") + 1
        # each line is the rater's own reason, with no dimension label added by the importer
        assert text.split("\n") == [f"- {b['text']}" for b in meta["bullets"]]
        assert not any(line.startswith(("- believability:", "- goal:", "- secret:")) for line in text.split("\n"))
        actors = {a for a, in mem_store.execute(
            "SELECT actor FROM steps WHERE run_id = ? AND list_contains(?, idx)", [run_id, steps])}
        assert steps and actors == {meta["agent"]}, "feedback is anchored to the rated agent's turns"
    rows = mem_store.execute("SELECT reason, field, line FROM quarantine")
    assert all(f == "data.parsed_conversation" and line > 1 for _, f, line in rows)


def test_proactivebench_labels_streams_and_model_traces(shared, mem_store):
    s = ingest(mem_store, [shared / "proactivebench"])
    assert s.quarantined == 0
    assert mem_store.scalar("SELECT count(*) FROM runs WHERE agent = 'proactive-agent'") == 1629
    assert mem_store.scalar("SELECT count(*) FROM runs WHERE agent = 'gold'") == 12
    valid = mem_store.scalar("SELECT count(*) FROM runs WHERE json_extract(gold, '$.valid')::BOOLEAN")
    assert valid == 623
    assert mem_store.scalar("SELECT count(DISTINCT agent) FROM runs") >= 15


def test_otel_traces_become_runs_with_tool_calls_and_tokens(shared, mem_store):
    s = ingest(mem_store, [shared / "otel-genai"])
    assert s.runs_added == 7 and s.quarantined == 0
    for run_id, in mem_store.execute("SELECT run_id FROM runs"):
        kinds = [k for k, in mem_store.execute("SELECT kind FROM steps WHERE run_id = ? ORDER BY idx", [run_id])]
        assert kinds.count("user_message") == 1
        assert "tool_call" in kinds and "tool_result" in kinds
        tools = {t for t, in mem_store.execute(
            "SELECT tool_name FROM steps WHERE run_id = ? AND kind = 'tool_call'", [run_id])}
        assert {"get_current_time", "write_file"} <= tools
    assert mem_store.scalar("SELECT sum(input_tokens) FROM steps") > 1000
    assert mem_store.scalar("SELECT count(*) FROM runs WHERE run_id LIKE 'otel-spans:%' AND length(native_id) >= 16") == 7


def test_inspect_json_and_eval_dedupe_and_keep_scores(shared, mem_store):
    s = ingest(mem_store, [shared / "inspect"])
    assert s.quarantined == 0 and s.duplicates >= 1
    browser = mem_store.execute("SELECT run_id, outcome FROM runs WHERE task LIKE 'browser:%'")
    assert browser and browser[0][1] == "success"
    tools = mem_store.scalar("SELECT count(*) FROM steps WHERE run_id = ? AND kind = 'tool_call'", [browser[0][0]])
    assert tools >= 3
    assert mem_store.scalar("SELECT count(*) FROM runs WHERE json_extract(gold, '$.scores') IS NOT NULL") == s.runs_added


def test_openhands_swe_agent_and_adp(shared, mem_store):
    s = ingest(mem_store, [shared / "openhands", shared / "swe-agent", shared / "adp"])
    assert s.quarantined == 0
    assert set(s.formats) == {"openhands", "swe-agent", "adp", "chat"}
    oh = mem_store.execute("SELECT count(*), sum(n_steps) FROM runs WHERE format = 'openhands'")[0]
    assert oh[0] == 5 and oh[1] > 300
    assert mem_store.scalar("SELECT count(*) FROM steps s JOIN runs r USING (run_id) "
                            "WHERE r.format = 'openhands' AND s.is_error") > 0
    assert mem_store.scalar("SELECT count(*) FROM runs WHERE format = 'swe-agent' AND outcome = 'submitted'") == 3
    # 29 trajectories, but webarena's sample repeats three of them verbatim
    assert mem_store.scalar("SELECT count(*) FROM runs WHERE format = 'adp'") == 26
    assert s.duplicates == 3
    assert mem_store.scalar("SELECT count(*) FROM runs WHERE format = 'adp' AND "
                            "json_extract(gold, '$.resolved') IS NOT NULL") == 5


def test_whole_shared_folder_twice_adds_nothing(shared, store):
    first = ingest(store, [shared])
    assert first.runs_added > 2000
    counts = store.counts()
    again = ingest(store, [shared])
    assert again.runs_added == 0 and again.runs_updated == 0
    assert again.duplicates == first.runs_added + first.duplicates
    after = store.counts()
    # quarantined records are recorded again on every attempt; nothing else changes
    assert {k: v for k, v in after.items() if k != "quarantine"} == \
           {k: v for k, v in counts.items() if k != "quarantine"}
