"""Scheduling: cron, config, recorded job runs, alerts, sampling and incremental scoring."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from typer.testing import CliRunner

from libra.cli.main import app
from metrics.jobs import alerts
from metrics.jobs.schedule import Cron, JobResult, JobSpec, ScheduleConfig, due, load_config, run_job, serve
from metrics.scoring import select_runs
from pipa.judge import PipaJudge
from pipa.scoring import score_pipa
from traces.ingest import ingest_runs
from traces.store import Store

from test_pipa import RUNS, shop_run


def test_cron_fields_steps_ranges_and_the_day_rule():
    c = Cron.parse("*/15 9-17 * * 1-5")
    assert c.matches(datetime(2026, 11, 25, 9, 45))  # a Wednesday
    assert not c.matches(datetime(2026, 11, 25, 18, 0)) and not c.matches(datetime(2026, 11, 29, 10, 0))  # Sunday
    assert c.next_after(datetime(2026, 11, 25, 17, 50)) == datetime(2026, 11, 26, 9, 0)
    assert Cron.parse("@hourly").next_after(datetime(2026, 1, 1, 10, 0)) == datetime(2026, 1, 1, 11, 0)
    # both day fields restricted: either matches, as cron does
    both = Cron.parse("0 0 1 * 0")
    assert both.matches(datetime(2026, 11, 1)) and both.matches(datetime(2026, 11, 8))
    assert not both.matches(datetime(2026, 11, 9))
    assert Cron.parse("0 0 * * 7").matches(datetime(2026, 11, 29))  # 7 is Sunday too
    for bad in ("* * * *", "61 * * * *", "*/0 * * * *", "a * * * *", "0 0 * * * *"):
        with pytest.raises(ValueError, match="cron expression"):
            Cron.parse(bad)
    with pytest.raises(ValueError, match="never fires"):
        Cron.parse("0 0 31 2 *")


def test_cron_takes_what_crontab_takes():
    """Names, Sunday as 7 in ranges, and a leap day: all valid crontab, all refused by the old parser."""
    assert Cron.parse("0 9 * * MON-FRI").matches(datetime(2026, 11, 30, 9, 0))  # a Monday
    assert not Cron.parse("0 9 * * MON-FRI").matches(datetime(2026, 11, 29, 9, 0))
    assert Cron.parse("0 0 1 JAN *").next_after(datetime(2026, 6, 1)) == datetime(2027, 1, 1)
    week = Cron.parse("30 6 * * 1-7")
    assert all(week.matches(datetime(2026, 11, d, 6, 30)) for d in range(23, 30))
    assert Cron.parse("0 0 29 2 *").next_after(datetime(2026, 3, 1)) == datetime(2028, 2, 29)


def test_config_errors_name_the_file_and_field(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("jobs:\n  - {name: a, cron: '0 * * *', action: score}\n  - {name: b, cron: '@daily', action: dance}\n")
    with pytest.raises(ValueError) as e:
        load_config(p)
    assert "s.yaml" in str(e.value) and "jobs.0.cron" in str(e.value) and "jobs.1.action" in str(e.value)
    p.write_text("jobs: [{name: a, cron: '@daily', action: score, sampel: 0.1}]\n")
    with pytest.raises(ValueError, match="sampel"):
        load_config(p)


def test_job_runs_are_recorded_with_failures_and_alerts(mem_store):
    ingest_runs(mem_store, RUNS)
    rules = [alerts.AlertRule(name="tools", metric="pipa_tool_efficiency", below=0.9, window_hours=None, min_runs=5)]

    def pipa(store, spec):
        res = score_pipa(store, PipaJudge())
        return JobResult(runs_scored=sum(r.runs_scored for _, r in res))

    def broken(store, spec):
        raise RuntimeError("disk full")

    actions = {"pipa": pipa, "score": broken}
    r1 = run_job(mem_store, JobSpec(name="p", cron="@hourly", action="pipa"), actions, rules)
    assert r1["status"] == "alert" and r1["runs_scored"] == 12
    assert r1["alerts"] == ["tools: pipa_tool_efficiency = 0.833 < 0.9"]
    r2 = run_job(mem_store, JobSpec(name="s", cron="@hourly", action="score"), actions, rules)
    assert r2["status"] == "failed" and "disk full" in r2["errors"][0]
    hist = mem_store.df("SELECT job, status, runs_scored, alerts, errors, ended_at FROM schedule_runs ORDER BY run_no")
    assert hist["status"].tolist() == ["alert", "failed"] and hist["ended_at"].notna().all()
    assert hist["alerts"].tolist() == [1, 1]
    # one open alert while it keeps firing; it clears when the score recovers
    assert len(alerts.firing(mem_store)) == 1
    ingest_runs(mem_store, [shop_run(100 + i, error=False, invent=False, reward=1.0) for i in range(40)])
    score_pipa(mem_store, PipaJudge())
    states = alerts.check(mem_store, rules)
    assert not states[0].firing and states[0].value > 0.9
    assert alerts.firing(mem_store).empty
    assert mem_store.scalar("SELECT count(*) FROM alerts WHERE cleared_at IS NOT NULL") == 1


def test_serve_runs_due_jobs_on_their_schedule(mem_store):
    ran = []
    cfg = ScheduleConfig(jobs=[JobSpec(name="five", cron="*/5 * * * *", action="alerts"),
                               JobSpec(name="hourly", cron="0 * * * *", action="alerts")])
    t = [datetime(2026, 11, 25, 10, 58)]

    def clock():
        return t[0]

    def sleep(s):
        t[0] += timedelta(minutes=1)

    def act(store, spec):
        ran.append((spec.name, t[0].strftime("%H:%M")))
        return JobResult()

    serve(mem_store, cfg, {"alerts": act}, clock=clock, sleep=sleep, stop=lambda: t[0] >= datetime(2026, 11, 25, 11, 11))
    assert ran == [("five", "11:00"), ("hourly", "11:00"), ("five", "11:05"), ("five", "11:10")]
    assert due(cfg, datetime(2026, 11, 25, 10, 0), datetime(2026, 11, 25, 10, 3)) == []


def test_sampling_is_stable_so_scoring_stays_incremental(mem_store):
    ingest_runs(mem_store, RUNS)
    a = select_runs(mem_store, sample=0.5, salt="x")
    assert 2 <= len(a) <= 10 and a == select_runs(mem_store, sample=0.5, salt="x")
    ingest_runs(mem_store, [shop_run(200 + i, error=False, invent=False, reward=1.0) for i in range(20)])
    b = select_runs(mem_store, sample=0.5, salt="x")
    assert set(a) <= set(b)  # runs sampled before stay sampled
    extra = [shop_run(200 + i, error=False, invent=False, reward=1.0) for i in range(20)]
    assert select_runs(mem_store, agent="agent-a") == sorted(r.run_id() for r in RUNS + extra if r.agent == "agent-a")
    assert select_runs(mem_store) is None
    with pytest.raises(ValueError):
        select_runs(mem_store, sample=1.5)


def test_cli_once_exits_3_on_an_alert_and_records_history(tmp_path, location):
    db = location
    s = Store(db)
    ingest_runs(s, RUNS)
    s.close()
    cfg = tmp_path / "schedule.yaml"
    cfg.write_text("jobs:\n"
                   "  - {name: pipa, cron: '0 * * * *', action: pipa, backend: offline}\n"
                   "  - {name: score, cron: '30 * * * *', action: score, backend: offline, sample: 0.5}\n"
                   "alerts:\n"
                   "  - {name: tools, metric: Tool efficiency, below: 0.9, window_hours: null, min_runs: 5}\n")
    runner = CliRunner()
    r = runner.invoke(app, ["schedule", "run", str(cfg), "--once", "--job", "pipa", "--db", db])
    assert r.exit_code == 3, r.output
    assert "12 scored" in r.output
    r = runner.invoke(app, ["schedule", "run", str(cfg), "--once", "--job", "score", "--db", db])
    assert r.exit_code == 3 and "0 scored" in r.output  # incremental: nothing new
    r = runner.invoke(app, ["schedule", "history", "--db", db])
    assert r.exit_code == 0 and "pipa" in r.output and "alert" in r.output
    r = runner.invoke(app, ["alerts", "list", "--db", db])
    assert "tools" in r.output and "0.833" in r.output
    assert runner.invoke(app, ["alerts", "check", str(cfg), "--db", db]).exit_code == 3
    assert runner.invoke(app, ["schedule", "run", str(cfg), "--once", "--job", "nope", "--db", db]).exit_code == 2


def test_the_example_schedule_is_valid():
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[1] / "examples" / "schedule.yaml")
    assert {j.action for j in cfg.jobs} == {"watch", "score", "pipa"} and len(cfg.alerts) == 2
