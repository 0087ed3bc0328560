"""The demo store, set up in two calls: the corpus with its accounts, then its dashboards filled offline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autolibra.induce import InduceConfig
from libra import accounts
from libra.actions import make_actions
from libra.demo import build_demo
from libra.inducing import induce
from libra.ingesting import rebuild_index
from libra.scoring import score, score_pipa_runs
from metrics import sets
from metrics.definitions import MetricSet
from metrics.jobs.alerts import AlertRule
from metrics.jobs.schedule import JobSpec, run_job
from metrics.scoring import ScoreSummary
from traces.annotation import feedback, queues
from traces.store import Store

# (name, role, password), for the demo store only
DEMO_ACCOUNTS = (("admin", "admin", "libra-admin"), ("alice", "annotator", "libra-demo"),
                 ("bao", "annotator", "libra-demo"), ("viewer", "viewer", "libra-demo"))
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoBuilt:
    summary: dict[str, Any]
    accounts_created: bool


def build(store: Store, runs: int = 240, seed: int = 7) -> DemoBuilt:
    """The seeded demo corpus, its search index, and the demo accounts when the store has none."""
    s = build_demo(store, n=runs, seed=seed)
    rebuild_index(store)
    created = not accounts.any_users(store)
    if created:
        for name, role, pw in DEMO_ACCOUNTS:
            accounts.add_user(store, name, pw, role)
        _demo_queue(store)
    return DemoBuilt(s, created)


def _demo_queue(store: Store, runs: int = 24) -> None:
    """A two-person queue over runs two of the demo's people wrote notes on, recorded as done by
    them, so the Queues page shows progress, agreement and who said what from the first look."""
    authors: dict[str, list[str]] = {}
    for f in feedback.load(store):
        who = authors.setdefault(f.run_id or "", [])
        if f.author not in who:
            who.append(f.author)
    shared = sorted(r for r, who in authors.items() if len(who) >= 2)[:runs]
    if not shared:
        return
    qid = queues.create(store, "Demo: runs two people read", "admin", k=2, run_ids=shared)
    for run_id in shared:
        for user in authors[run_id][:2]:
            queues.record(store, qid, run_id, user)


@dataclass(frozen=True)
class DemoFilled:
    induced: MetricSet | None  # None when an induced set was already there
    heldout_coverage: float | None
    heldout_redundancy: float | None
    scored: list[tuple[MetricSet, ScoreSummary]]
    job: dict[str, Any]


def fill(store: Store, progress: Progress | None = None) -> DemoFilled:
    """Induce metrics offline and approve them, score every run (PIPA too), and record one scheduled job."""
    induced, coverage, redundancy = None, None, None
    if not any(sets.load(store, r.set_id, int(r.version)).provenance.get("method") == "autolibra"
               for r in sets.list_sets(store).itertuples()):
        res = induce(store, backend="offline", config=InduceConfig(random_state=0), set_id="induced",
                     name="Demo metrics", progress=progress)
        sets.approve(store, res.metric_set.set_id, res.metric_set.version, "admin")
        held = res.summary()["heldout"]
        induced, coverage, redundancy = res.metric_set, held["coverage"], held["redundancy"]
    scored = score(store, backend="offline", progress=progress)
    scored += score_pipa_runs(store, backend="offline",
                              progress=(lambda d, t: progress("pipa", d, t)) if progress else None)[1]
    rule = AlertRule(name="demo: tool efficiency below 90%", metric="pipa_tool_efficiency", below=0.9,
                     window_hours=None, min_runs=10)
    job = run_job(store, JobSpec(name="demo-score", cron="@hourly", action="score", backend="offline"),
                  make_actions(), [rule])
    return DemoFilled(induced, coverage, redundancy, scored, job)
