"""Training data out: runs selected by their verdicts, written as ADP trajectories that validate
against ADP's schema and read back through Libra's own ADP importer."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

import libra
from libra.cli.main import app
from libra.demo import TRAITS, build_demo, latent_traits
from metrics import sets
from metrics.definitions import Metric, MetricSet
from metrics.judges.recorded import RecordedJudge
from metrics.scoring import score_runs
from metrics.selection import BadCondition, select_runs
from traces import adp
from traces.export import iter_runs_with_ids
from traces.ingest import BatchWriter
from traces.model import IngestSummary, Run, Step, StepKind
from traces.store import Store

ADP_SETS = ("eto", "agenttuning_alfworld", "agenttuning_webshop", "nebius_SWE-agent-trajectories",
            "swe-gym_openhands_sampled_trajectories", "webarena_successful")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("adp") / "d.duckdb")
    build_demo(store, n=120, seed=5)
    ms = sets.save(store, MetricSet("traits", 1, "Behaviours", tuple(
        Metric(t, t.replace("_", " ").title(), f"{t}?") for t in TRAITS)), approved_by="admin")
    score_runs(store, ms, RecordedJudge(latent_traits(store)))
    return store


def _shape(run: Run) -> list[tuple[str, str, str | None]]:
    """What a trajectory keeps of a run: each step's role, text and tool, in order (a tool's result is
    an observation in ADP, a system turn a user-side text named "system")."""
    kind = {StepKind.TOOL_RESULT: StepKind.OBSERVATION, StepKind.SYSTEM: StepKind.USER}
    out = []
    for s in run.steps:
        k = kind.get(s.kind, s.kind)
        text = s.content if k != StepKind.TOOL_CALL else json.dumps(s.tool_args, sort_keys=True)
        out.append((str(k), text, s.tool_name if k == StepKind.TOOL_CALL else None))
    return out


def test_the_schema_accepts_every_shared_adp_sample_and_refuses_what_adp_refuses(shared):
    n = 0
    for name in ADP_SETS:
        for t in json.loads((shared / "adp" / name / "sample_std.json").read_text()):
            adp.validate(t)
            n += 1
    assert n >= 12
    good = {"id": "x", "content": [{"class_": "text_observation", "content": "hi", "source": "user"}]}
    adp.validate(good)
    for bad, field in ((dict(good, content=[{"class_": "text_observation", "content": "hi", "source": "robot"}]),
                        "source"),
                       (dict(good, content=[{"class_": "api_action", "function": "f"}]), "kwargs"),
                       (dict(good, content=[{"class_": "thought", "content": "x"}]), "class_"),
                       (dict(good, content=[{"class_": "message_action", "content": "x", "mood": "y"}]), "mood"),
                       ({"content": []}, "id")):
        with pytest.raises(ValidationError, match=field):
            adp.validate(bad)


def test_export_selects_by_verdicts_carries_them_and_round_trips(demo, tmp_path):
    traits = latent_traits(demo)
    reward = dict(demo.execute("SELECT run_id, reward FROM runs"))
    expected = sorted(r for r, t in traits.items() if t.get("confirmation") == 1 and reward[r] >= 1)
    assert 5 < len(expected) < len(traits)
    out = tmp_path / "sft.jsonl"
    e = libra.export_adp(demo, out, where='"Confirmation" = 1 and reward >= 1')
    assert (e.runs, e.selected) == (len(expected), len(expected))
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(t["id"] for t in lines) == expected
    for t in lines:
        adp.validate(t)
        scores = t["details"]["libra_scores"]
        assert scores["confirmation"]["value"] == 1
        assert {k: v["value"] for k, v in scores.items() if v["value"]} == traits[t["id"]]
        assert t["details"]["reward"] >= 1
    # back through Libra's own ADP importer: the same steps, agent and reward
    back = Store(tmp_path / "back.duckdb")
    got = libra.ingest(back, [out])
    assert got.summary.runs_added == len(expected) and not got.summary.quarantined
    assert set(got.summary.formats) == {"adp"}
    originals = dict(iter_runs_with_ids(demo, run_ids=expected))
    for _, run in iter_runs_with_ids(back):
        orig = originals[run.native_id]
        assert _shape(run) == _shape(orig)
        assert (run.agent, run.reward, run.model) == (orig.agent, orig.reward, orig.model)


def test_a_json_array_export_reads_as_adp_sample_std(demo, tmp_path):
    out = tmp_path / "sample_std.json"
    e = libra.export_adp(demo, out, where="communication = -1", limit=7)
    data = json.loads(out.read_text())
    assert e.runs == len(data) == 7
    assert all(t["details"]["libra_scores"]["communication"]["value"] == -1 for t in data)
    assert not (tmp_path / "sample_std.json.part").exists()


def test_where_names_every_mistake(demo):
    with pytest.raises(BadCondition, match="did you mean confirmation"):
        select_runs(demo, "confirmaton = 1")
    with pytest.raises(BadCondition, match="no operator"):
        select_runs(demo, "confirmation 1")
    with pytest.raises(BadCondition, match="compares with a number"):
        select_runs(demo, "confirmation = yes")
    with pytest.raises(BadCondition, match="empty clause"):
        select_runs(demo, "confirmation = 1 and")
    # values are bound, never spliced into the SQL
    assert select_runs(demo, "outcome = \"x' OR 1=1 --\"") == []
    n_fb = demo.execute("SELECT count(DISTINCT run_id) FROM feedback WHERE deleted_at IS NULL")[0][0]
    assert len(select_runs(demo, "feedback >= 1")) == n_fb


def test_hostile_text_survives_the_export_exactly(tmp_path):
    store = Store(tmp_path / "h.duckdb")
    evil = '</script><img src=x onerror=alert(1)> "quotes" \u202etxt.exe \x00 null \U0001f600 [a](javascript:x)'
    w = BatchWriter(store, IngestSummary())
    w.add_run(Run(native_id="h1", format="libra", source="t", agent="a@1", task=evil, steps=(
        Step(kind=StepKind.SYSTEM, content="system " + evil),
        Step(kind=StepKind.USER, content=evil),
        Step(kind=StepKind.THOUGHT, content="think " + evil),
        Step(kind=StepKind.TOOL_CALL, tool_name="search", tool_args={"q": evil}),
        Step(kind=StepKind.TOOL_RESULT, tool_name="search", content=evil, is_error=True),
        Step(kind=StepKind.TOOL_CALL, tool_name="code:python", tool_args={"language": "python", "code": evil}),
        Step(kind=StepKind.AGENT, content=evil),
        Step(kind=StepKind.THOUGHT, content="a last thought with no action"),
    ), globally_unique_id=True))
    w.flush()
    out = tmp_path / "h.jsonl"
    assert libra.export_adp(store, out).runs == 1
    t = json.loads(out.read_text())
    assert [c["class_"] for c in t["content"]] == ["text_observation", "text_observation", "api_action",
                                                   "text_observation", "code_action", "message_action",
                                                   "message_action"]
    assert t["content"][2]["description"] == "think " + evil and t["content"][2]["kwargs"] == {"q": evil}
    assert t["content"][-1] == {"class_": "message_action", "content": "", "description": "a last thought with no action"}
    back = Store(tmp_path / "hb.duckdb")
    libra.ingest(back, [out])
    (_, run), = list(iter_runs_with_ids(back))
    assert [s.content for s in run.steps if s.kind == StepKind.USER][1] == evil


def test_shared_adp_trajectories_round_trip_through_libra(shared, tmp_path):
    src = Store(tmp_path / "src.duckdb")
    libra.ingest(src, [shared / "adp" / "swe-gym_openhands_sampled_trajectories" / "sample_std.json",
                       shared / "adp" / "agenttuning_alfworld" / "sample_std.json"])
    runs = dict(iter_runs_with_ids(src))
    out = tmp_path / "again.json"
    assert libra.export_adp(src, out).runs == len(runs) > 0
    again = Store(tmp_path / "again.duckdb")
    libra.ingest(again, [out])
    back = {r.native_id: r for _, r in iter_runs_with_ids(again)}
    for run_id, run in runs.items():
        assert _shape(back[run_id]) == _shape(run)
        assert back[run_id].gold == run.gold


def test_cli_exports_adp_with_where_and_refuses_where_elsewhere(demo, tmp_path):
    runner = CliRunner()
    out = tmp_path / "c.jsonl"
    r = runner.invoke(app, ["export", str(out), "--db", demo.path, "--as", "adp", "--where", "grounding = -1",
                            "--json"])
    assert r.exit_code == 0, r.output
    n = json.loads(r.stdout)["runs"]
    assert n == sum(t.get("grounding") == -1 for t in latent_traits(demo).values()) > 0
    r = runner.invoke(app, ["export", str(tmp_path / "p"), "--db", demo.path, "--where", "grounding = -1"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["export", str(out), "--db", demo.path, "--as", "adp", "--where", "groundng = 1"])
    assert r.exit_code == 2 and "did you mean grounding" in r.output


def test_an_export_that_fails_midway_leaves_the_earlier_file_whole(demo, tmp_path, monkeypatch):
    out = tmp_path / "sft.jsonl"
    first = libra.export_adp(demo, out, where="grounding = 1")
    before = out.read_bytes()
    calls = {"n": 0}
    real = adp.trajectory

    def failing(run, run_id, details=None):
        calls["n"] += 1
        if calls["n"] == 3:
            return {"id": run_id, "content": [{"class_": "thought", "content": "not ADP"}]}
        return real(run, run_id, details)

    monkeypatch.setattr(adp, "trajectory", failing)
    with pytest.raises(ValidationError):
        libra.export_adp(demo, out)
    assert out.read_bytes() == before and first.runs == len(before.splitlines())
    assert not (tmp_path / "sft.jsonl.part").exists()


def test_a_kill_during_an_export_never_leaves_half_a_file(demo, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "big.json"
    code = ("import libra, sys; s = libra.open_store(sys.argv[1]); "
            "libra.export_adp(s, sys.argv[2], progress=lambda d, t: print(d, flush=True))")
    proc = subprocess.Popen([sys.executable, "-c", code, demo.path, str(out)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ})
    assert proc.stdout is not None
    proc.stdout.readline()  # the first hundred are written
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.1)
    # killed after the first hundred of 120: the file is absent (the rest sits in .part), or whole
    assert not out.exists() or len(json.loads(out.read_text())) == demo.scalar("SELECT count(*) FROM runs")
