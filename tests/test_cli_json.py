"""`--json` on the commands scripts call (issue 19 §7): one JSON document on stdout, the exit status kept."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from libra.cli.main import app


def _run(*args):
    r = CliRunner().invoke(app, list(args))
    assert r.stdout.strip(), (args, r.output, r.exception)
    return r.exit_code, json.loads(r.stdout)


def test_ingest_stats_export_check_and_score_speak_json(tmp_path):
    data = tmp_path / "runs.jsonl"
    data.write_text('{"id": "a", "messages": [{"role": "user", "content": "hi"}, '
                    '{"role": "assistant", "content": "hello"}]}\nnot json\n')
    db = str(tmp_path / "s.duckdb")
    code, got = _run("ingest", str(data), "--db", db, "--json")
    assert code == 1 and got["records"] == 2 and got["runs_added"] == 1 and got["quarantined"] == 1
    assert got["per_file"][0]["stored"] == 1
    code, got = _run("stats", "--db", db, "--json")
    assert code == 0 and got["counts"]["runs"] == 1 and got["by_format_and_agent"][0]["format"] == "chat"
    code, got = _run("export", str(tmp_path / "out.jsonl"), "--as", "jsonl", "--db", db, "--json")
    assert code == 0 and got == {"as": "jsonl", "path": str(tmp_path / "out.jsonl"), "runs": 1}
    code, got = _run("check", "--db", db, "--json")
    assert code == 0 and got["ok"] is True and all(f["count"] == 0 for f in got["findings"])
    import libra
    from metrics.definitions import Metric, MetricSet

    libra.sets.save(libra.open_store(db), MetricSet("greet", 0, "Greets", (Metric("hello", "Says hello", "Greets"),)))
    code, got = _run("score", "--db", db, "--set", "greet", "--backend", "offline", "--json")
    assert code == 0 and [(r["set"], r["status"]) for r in got] == [("greet", "done")]
    assert {"runs_scored", "runs_failed", "cost_usd", "needs_llm", "job_id"} <= set(got[0])
