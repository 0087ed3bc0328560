"""Scheduled jobs: cron expressions, a config file, and a record of every job run.

The config (YAML) lists jobs, each with a cron expression and an action,
and alert rules checked after every job:

    jobs:
      - {name: otel, cron: "*/5 * * * *", action: watch, directory: /var/log/otel}
      - {name: hourly-score, cron: "0 * * * *", action: score, sample: 0.2, max_cost: 5}
    alerts:
      - {name: tool-errors, metric: pipa_tool_efficiency, below: 0.9, window_hours: 24}

What an action does is supplied by the caller (the CLI wires ingest, watch,
score, PIPA and proactivity scoring), so this module stays below the
packages it schedules. Every run is recorded in `schedule_runs`: start,
end, status, runs ingested and scored, cost, alerts firing, errors.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from metrics.jobs.alerts import AlertRule, check
from traces import owner
from traces.store import Store

# -- cron ---------------------------------------------------------------------------
# croniter, not a parser of our own: names (MON, JAN), Sunday as 7, L, ranges with steps, and the
# leap-day expressions (0 0 29 2 *) an hour-by-hour search would call "never fires".


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression (minute hour day-of-month month day-of-week), in UTC.

    When both day fields are restricted, either may match, as cron does.
    """

    expr: str

    @classmethod
    def parse(cls, expr: str) -> Cron:
        text = expr.strip()
        if not text.startswith("@") and len(text.split()) != 5:
            raise ValueError(f"cron expression {expr!r} needs five fields: minute hour day month weekday")
        if not croniter.is_valid(text):
            raise ValueError(f"cron expression {expr!r} is not valid")
        try:
            croniter(text, datetime(2000, 1, 1)).get_next(datetime)
        except (CroniterBadDateError, CroniterBadCronError) as exc:  # e.g. 0 0 31 2 *
            raise ValueError(f"cron expression {expr!r} never fires: {exc}") from None
        return cls(text)

    def matches(self, t: datetime) -> bool:
        return bool(croniter.match(self.expr, t.replace(second=0, microsecond=0)))

    def next_after(self, t: datetime) -> datetime:
        nxt: datetime = croniter(self.expr, t).get_next(datetime)
        return nxt


# -- config -------------------------------------------------------------------------

ACTIONS = ("ingest", "watch", "score", "pipa", "proactive", "alerts", "index", "lake")


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    cron: str
    action: str
    paths: list[str] = Field(default_factory=list)
    directory: str | None = None
    set: str | None = None
    agent: str | None = None
    format: str | None = None
    sample: float | None = Field(default=None, gt=0, le=1)
    max_cost: float | None = Field(default=None, gt=0)
    backend: str = "auto"
    batch: str = "auto"
    reward_model: str | None = None
    keep_snapshots_days: float = Field(default=7.0, ge=0)  # a lake job: how far back time travel works

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        Cron.parse(v)
        return v

    @field_validator("action")
    @classmethod
    def _action(cls, v: str) -> str:
        if v not in ACTIONS:
            raise ValueError(f"unknown action {v!r}; one of {', '.join(ACTIONS)}")
        return v


class ScheduleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[JobSpec]
    alerts: list[AlertRule] = Field(default_factory=list)


def load_config(path: str | Path) -> ScheduleConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return ScheduleConfig.model_validate(raw or {})
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path}: {errs}") from None


# -- running ------------------------------------------------------------------------

@dataclass
class JobResult:
    runs_ingested: int = 0
    runs_scored: int = 0
    cost_usd: float = 0.0
    errors: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


Action = Callable[[Store, JobSpec], JobResult]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def run_job(store: Store, spec: JobSpec, actions: dict[str, Action], rules: list[AlertRule]) -> dict:
    """Run one job now, check the alert rules, and record it all; never raises for a job's failure."""
    import json

    started = _now()
    with store.transaction() as con:
        run_no = con.execute("SELECT coalesce(max(run_no), 0) + 1 FROM schedule_runs").fetchone()[0]
        con.execute("INSERT INTO schedule_runs (run_no, job, action, started_at, status, owner) "
                    "VALUES (?, ?, ?, ?, ?, ?)", [run_no, spec.name, spec.action, started, "running", owner.current()])
    try:
        res = actions[spec.action](store, spec)
    except Exception as exc:  # noqa: BLE001 - recorded, and the scheduler goes on
        res = JobResult(errors=[f"{type(exc).__name__}: {exc}"], detail={"traceback": traceback.format_exc()[-4000:]})
    firing = [s for s in check(store, rules, job=spec.name) if s.firing] if rules else []
    status = "failed" if res.errors else ("alert" if firing else "ok")
    with store.transaction() as con:
        con.execute(
            "UPDATE schedule_runs SET ended_at = ?, status = ?, runs_ingested = ?, runs_scored = ?, cost_usd = ?, "
            "alerts = ?, errors = ?, detail = ? WHERE run_no = ?",
            [_now(), status, res.runs_ingested, res.runs_scored, res.cost_usd, len(firing),
             "\n".join(res.errors)[:4000] or None, json.dumps(res.detail, default=str), run_no])
    return {"run_no": run_no, "job": spec.name, "status": status, "runs_ingested": res.runs_ingested,
            "runs_scored": res.runs_scored, "cost_usd": res.cost_usd, "errors": res.errors,
            "alerts": [f"{s.rule}: {s.metric_id} = {s.value:.3f} < {s.threshold}" for s in firing]}


def due(config: ScheduleConfig, last: datetime, now: datetime) -> list[JobSpec]:
    """Jobs with a firing time in (last, now]."""
    out = []
    for j in config.jobs:
        if Cron.parse(j.cron).next_after(last) <= now:
            out.append(j)
    return out


def serve(store: Store, config: ScheduleConfig, actions: dict[str, Action], *,
          on_result: Callable[[dict], None] | None = None, stop: Callable[[], bool] = lambda: False,
          clock: Callable[[], datetime] = _now, sleep: Callable[[float], None] = time.sleep) -> None:
    """Run jobs when their cron expressions fire, one at a time, until `stop()`.

    A job that overruns its next firing runs once when it can, not once per
    missed firing: catching up on a backlog is the scoring job's own business.
    """
    last = clock()
    while not stop():
        now = clock()
        for spec in due(config, last, now):
            r = run_job(store, spec, actions, config.alerts)
            if on_result:
                on_result(r)
        last = now
        nxt = min(Cron.parse(j.cron).next_after(now) for j in config.jobs)
        sleep(max(0.5, min(30.0, (nxt - clock()).total_seconds())))


def history(store: Store, limit: int = 200):
    """Recent scheduled runs; one left `running` by a scheduler that is gone shows as abandoned."""
    df = store.df("SELECT * FROM schedule_runs ORDER BY run_no DESC LIMIT ?", [limit])
    dead = (df["status"] == "running") & df["owner"].map(lambda who: owner.alive(who) is False)
    df.loc[dead, "status"] = "abandoned"
    return df
