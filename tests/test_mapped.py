"""`libra ingest FILE --map mapping.yaml` (issue 19 §4): any results file, by a few lines of YAML."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from libra.cli.main import app
from traces.export import load_runs
from traces.store import Store

RESULTS = {"suite": "x", "results": [
    {"task_id": "T1", "prompt": "Book a table", "model": "m-1", "score": {"value": 1.0}, "resolved": True,
     "trajectory": [{"from": "human", "value": "Book a table for two"},
                    {"from": "gpt", "value": "", "tool_calls": [{"id": "c1", "name": "book", "arguments": {"n": 2}}]},
                    {"from": "observation", "value": "booked", "tool_call_id": "c1"},
                    {"from": "gpt", "value": "Booked."}]},
    {"task_id": "T2", "prompt": "Cancel", "model": "m-1", "score": {"value": 0}, "resolved": False,
     "trajectory": [{"from": "human", "value": "Cancel it"}, {"from": "gpt", "value": "Cannot."}]},
    {"task_id": "T3", "model": "m-1", "score": {"value": "high"}, "trajectory": [{"from": "gpt", "value": "x"}]},
]}
MAPPING = """
records: results
id: task_id
messages: trajectory
role: from
content: value
roles: {human: user, gpt: assistant, observation: tool}
reward: score.value
labels: {resolved: resolved}
task: prompt
agent: model
"""


def test_a_results_file_lands_by_its_mapping_and_bad_runs_are_quarantined(tmp_path):
    data, mapping, db = tmp_path / "results.json", tmp_path / "map.yaml", str(tmp_path / "s.duckdb")
    data.write_text(json.dumps(RESULTS))
    mapping.write_text(MAPPING)
    r = CliRunner().invoke(app, ["ingest", str(data), "--map", str(mapping), "--db", db, "--json"])
    got = json.loads(r.stdout)
    assert r.exit_code == 1 and (got["records"], got["runs_added"], got["quarantined"]) == (3, 2, 1)
    store = Store(db)
    reason, = store.execute("SELECT reason FROM quarantine")[0]
    assert "'reward' (score.value) is 'high', not a number" in reason
    runs = {r.native_id: r for r in load_runs(store, [x for x, in store.execute("SELECT run_id FROM runs")]).values()}
    t1 = runs["T1"]
    assert (t1.format, t1.agent, t1.task, t1.reward, t1.gold) == ("mapped", "m-1", "Book a table", 1.0,
                                                                   {"resolved": True, "reward": 1.0})
    assert [(s.kind, s.content, s.tool_name) for s in t1.steps] == [
        ("user_message", "Book a table for two", None), ("tool_call", "", "book"), ("tool_result", "booked", "book"),
        ("agent_message", "Booked.", None)]
    assert runs["T2"].outcome == "failure"


def test_a_mapping_that_does_not_fit_is_refused_by_key_before_anything_is_written(tmp_path):
    data, db = tmp_path / "results.json", str(tmp_path / "s.duckdb")
    data.write_text(json.dumps(RESULTS))
    runner = CliRunner()
    cases = {
        "records: results\nmessages: steps\n": "'messages': 'steps' finds no list of messages",
        "records: runs\nmessages: trajectory\n": "'records': 'runs' finds no list",
        "records: results\nmessages: trajectory\n": "'role': 'role' finds no role in the first message",
        "messages: trajectory[\n": "'messages': 'trajectory[' is not a JMESPath expression",
        "messages: trajectory\ncolour: red\n": "'colour'",
        "messages: t\nroles: {gpt: robot}\n": "roles must map to one of",
    }
    for i, (text, said) in enumerate(cases.items()):
        m = tmp_path / f"m{i}.yaml"
        m.write_text(text)
        r = runner.invoke(app, ["ingest", str(data), "--map", str(m), "--db", db])
        assert r.exit_code != 0 and said in " ".join(r.output.split()), (text, r.output)
        assert str(m) in r.output.replace("\n", "") or "colour" in said
    assert not Store(db).scalar("SELECT count(*) FROM runs")


def test_formats_explain_says_which_format_reads_a_file_and_what_the_others_expect(tmp_path):
    runner = CliRunner()
    chat = tmp_path / "chat.jsonl"
    chat.write_text('{"id": "a", "messages": [{"role": "user", "content": "hi"}]}\n' * 3)
    r = runner.invoke(app, ["formats", "--explain", str(chat)])
    said = " ".join(r.output.split())
    assert r.exit_code == 0 and "first record's keys: id, messages" in said
    assert "chat │ reads it" in said and "otlp-json │ declines │ an object with \"resourceSpans\"" in said
    other = tmp_path / "results.json"
    other.write_text(json.dumps(RESULTS))
    r = runner.invoke(app, ["formats", "--explain", str(other)])
    said = " ".join(r.output.split())
    assert r.exit_code == 1 and "keys: suite, results" in said and "libra ingest --map" in said
