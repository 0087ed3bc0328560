"""What scheduled jobs do: each action of a schedule config, wired to the library.

`metrics.jobs.schedule` runs jobs on their cron schedules and records them;
the actions it runs are composed here, from the same calls `libra ingest`,
`libra score` and `libra proactive score` make, so a scheduled job and the
command leave the store the same way.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from libra.ingesting import ingest, rebuild_index
from libra.lake import maintain_lake
from libra.scoring import score, score_pipa_runs
from libra import proactive
from metrics.jobs.schedule import Action, JobResult, JobSpec
from traces.ingest.watch import Watcher
from traces.store import Store


def make_actions() -> dict[str, Action]:
    """The scheduler's actions, wired to the packages; one Watcher per directory survives between runs."""
    watchers: dict[str, Watcher] = {}

    def ingest_action(store: Store, spec: JobSpec) -> JobResult:
        s = ingest(store, spec.paths).summary
        return JobResult(runs_ingested=s.runs_added + s.runs_updated,
                         errors=[f"{s.quarantined} records quarantined"] if s.quarantined else [],
                         detail=s.as_dict())

    def watch_action(store: Store, spec: JobSpec) -> JobResult:
        if not spec.directory:
            raise ValueError("a watch job needs 'directory'")
        w = watchers.get(spec.directory)
        if w is None:
            w = watchers[spec.directory] = Watcher(store, spec.directory)
        s = w.poll()
        return JobResult(runs_ingested=s.runs_added + s.runs_updated, detail={"open_traces": w.open_traces})

    def score_action(store: Store, spec: JobSpec) -> JobResult:
        results = score(store, set_id=spec.set, backend=spec.backend, max_cost=spec.max_cost,
                                 batch=spec.batch, agent=spec.agent, fmt=spec.format, sample=spec.sample)
        errors = [f"{ms.set_id}: {r.runs_failed} runs failed" for ms, r in results if r.runs_failed]
        errors += [f"{ms.set_id}: {r.error}" for ms, r in results if r.status != "done" and r.error]
        # how much of what people wrote since each induced set was made it still covers (the dashboard
        # line and the new_feedback_coverage alert read this)
        from libra.living import measure_watched  # induction's models load only when there is new feedback

        covered = measure_watched(store, backend=spec.backend, job=spec.name) if spec.set is None else []
        return JobResult(runs_scored=sum(r.runs_scored for _, r in results),
                         cost_usd=sum(r.cost_usd for _, r in results), errors=errors,
                         detail={**{ms.set_id: r.status for ms, r in results},
                                 **{f"{c.set_id} v{c.version} new-feedback coverage": round(c.coverage, 3)
                                    for c in covered}})

    def pipa_action(store: Store, spec: JobSpec) -> JobResult:
        _, res = score_pipa_runs(store, backend=spec.backend, max_cost=spec.max_cost, fmt=spec.format,
                                 agent=spec.agent)
        return JobResult(runs_scored=sum(r.runs_scored for _, r in res), cost_usd=sum(r.cost_usd for _, r in res),
                         errors=[f"{ms.set_id}: {r.runs_failed} failed" for ms, r in res if r.runs_failed])

    def proactive_action(store: Store, spec: JobSpec) -> JobResult:
        r = proactive.score(store, name=spec.reward_model or "proactive-reward", agent=spec.agent)
        return JobResult(runs_scored=r.summary.runs_scored)

    def index_action(store: Store, spec: JobSpec) -> JobResult:
        # large stores are indexed off the ingest's path: a nightly job, say, beside the hourly ingest
        return JobResult(detail={"indexed": rebuild_index(store)})

    def lake_action(store: Store, spec: JobSpec) -> JobResult:
        # a lake's nightly upkeep beside its hourly ingests; a file store needs none
        m = maintain_lake(store, keep_snapshots=timedelta(days=spec.keep_snapshots_days))
        return JobResult(detail=asdict(m))

    def alerts_action(store: Store, spec: JobSpec) -> JobResult:
        return JobResult()  # rules are checked after every job; this job only checks them

    return {"ingest": ingest_action, "watch": watch_action, "score": score_action, "pipa": pipa_action,
            "proactive": proactive_action, "alerts": alerts_action, "index": index_action,
            "lake": lake_action}
