"""Alerts: a metric falling below a threshold.

A rule names a metric (by id, or by name across sets), optionally an agent,
a threshold on the metric's score (#(+1) / (#(+1) + #(-1)), or the mean unit
pass rate for scoped criteria), a window of recent runs and a minimum number
of scored runs before it can fire. Checking writes an alert when a rule
starts firing and clears it when the score recovers, so the app shows what
is firing now and the history stays.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from pydantic import BaseModel, Field

from traces.store import Store


class AlertRule(BaseModel):
    """One rule, as written in the schedule config (a trust boundary: validated)."""

    name: str
    metric: str = Field(description="metric id, or metric name (case-insensitive)")
    below: float = Field(ge=0, le=1)
    agent: str | None = None
    metric_set: str | None = None
    window_hours: float | None = Field(default=24.0, gt=0)
    min_runs: int = Field(default=10, ge=1)


@dataclass(frozen=True)
class AlertState:
    rule: str
    metric_set_id: str
    metric_id: str
    agent: str | None
    value: float | None
    threshold: float
    runs: int
    firing: bool


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# The rule's metric that watches a set rather than runs: how much of the feedback written since
# the set was made it covers, as the scheduled job last measured it (autolibra.living).
NEW_FEEDBACK_COVERAGE = "new_feedback_coverage"


def _new_feedback_coverage(store: Store, rule: AlertRule, since: datetime | None) -> list[AlertState]:
    rows = store.execute(
        """
        WITH latest AS (
            SELECT set_id, version, measured_at FROM feedback_coverage WHERE (?::VARCHAR IS NULL OR set_id = ?)
            QUALIFY row_number() OVER (PARTITION BY set_id ORDER BY version DESC, measured_at DESC) = 1
        )
        SELECT c.set_id, sum(c.remarks), sum(c.covered) / nullif(sum(c.remarks), 0)
        FROM feedback_coverage c JOIN latest USING (set_id, version, measured_at)
        WHERE (?::TIMESTAMP IS NULL OR c.week >= date_trunc('week', ?::TIMESTAMP))
        GROUP BY c.set_id ORDER BY 1
        """, [rule.metric_set, rule.metric_set, since, since])
    return [AlertState(rule.name, sid, NEW_FEEDBACK_COVERAGE, None, None if v is None else float(v), rule.below,
                       int(n), v is not None and n >= rule.min_runs and v < rule.below) for sid, n, v in rows]


def evaluate(store: Store, rule: AlertRule, now: datetime | None = None) -> list[AlertState]:
    """The rule's current value per metric set it matches (newest set version).

    `new_feedback_coverage` as the metric watches the share of new remarks the set
    covers (min_runs then counts remarks), from the newest scheduled measurement.
    """
    now = now or _now()
    if rule.metric == NEW_FEEDBACK_COVERAGE:
        return _new_feedback_coverage(store, rule, now - timedelta(hours=rule.window_hours)
                                      if rule.window_hours else None)
    since = now - timedelta(hours=rule.window_hours) if rule.window_hours else None
    rows = store.execute(
        """
        WITH m AS (
            SELECT DISTINCT d.set_id, d.metric_id FROM metric_defs d
            WHERE (d.metric_id = ? OR lower(d.name) = lower(?)) AND (?::VARCHAR IS NULL OR d.set_id = ?)
        ), s AS (
            SELECT s.* FROM scores s JOIN m ON m.set_id = s.metric_set_id AND m.metric_id = s.metric_id
            JOIN runs r USING (run_id)
            WHERE (?::VARCHAR IS NULL OR r.agent = ?)
              AND (?::TIMESTAMP IS NULL OR coalesce(r.started_at, r.ingested_at) >= ?)
            QUALIFY s.metric_set_version = max(s.metric_set_version) OVER (PARTITION BY s.metric_set_id)
        )
        SELECT metric_set_id, metric_id,
               count(*) FILTER (WHERE value <> 0) AS runs,
               CASE WHEN count(rate) > 0 THEN avg(rate)
                    ELSE sum((value > 0)::INT) / nullif(sum((value <> 0)::INT), 0) END AS score
        FROM s GROUP BY ALL ORDER BY ALL
        """,
        [rule.metric, rule.metric, rule.metric_set, rule.metric_set, rule.agent, rule.agent, since, since])
    return [AlertState(rule.name, sid, mid, rule.agent, None if v is None else float(v), rule.below, int(n),
                       v is not None and n >= rule.min_runs and v < rule.below)
            for sid, mid, n, v in rows]


def check(store: Store, rules: list[AlertRule], job: str | None = None) -> list[AlertState]:
    """Evaluate every rule; record alerts that start firing and clear those that stopped."""
    with store.hold():  # one open of the file for every rule's query and the write
        return _record(store, [s for r in rules for s in evaluate(store, r)], job)


def _record(store: Store, states: list[AlertState], job: str | None) -> list[AlertState]:
    now = _now()
    with store.transaction() as con:
        for s in states:
            key = hashlib.sha1(f"{s.rule}|{s.metric_set_id}|{s.metric_id}|{s.agent}".encode()).hexdigest()[:16]
            open_ = con.execute("SELECT alert_id FROM alerts WHERE alert_id LIKE ? AND cleared_at IS NULL",
                                [key + "%"]).fetchone()
            if s.firing and not open_:
                con.execute("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                            [f"{key}-{now:%Y%m%d%H%M%S%f}", s.rule, s.metric_set_id, s.metric_id, s.agent, s.value,
                             s.threshold, s.runs, None, now, job])
            elif s.firing and open_:
                con.execute("UPDATE alerts SET value = ?, runs = ? WHERE alert_id = ?", [s.value, s.runs, open_[0]])
            elif not s.firing and open_:
                con.execute("UPDATE alerts SET cleared_at = ? WHERE alert_id = ?", [now, open_[0]])
    return states


def firing(store: Store) -> pd.DataFrame:
    """Alerts firing now, newest first."""
    return store.df(
        "SELECT a.rule, a.metric_set_id, a.metric_id, coalesce(d.name, a.metric_id) AS metric, a.agent, a.value, "
        "a.threshold, a.runs, a.raised_at, a.job FROM alerts a LEFT JOIN (SELECT DISTINCT set_id, metric_id, name "
        "FROM metric_defs) d ON d.set_id = a.metric_set_id AND d.metric_id = a.metric_id "
        "WHERE a.cleared_at IS NULL ORDER BY a.raised_at DESC")
