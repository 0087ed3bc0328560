"""Dashboard query latency on a large generated store.

Builds (once, cached under --dir) a store of 100k runs, 2M steps and 1M
scores through the real schema, then times every query the Dashboards page
runs, through the same Store API the app uses (each call opens the file, as
the app does between reruns). Two references compute the first chart's
figures the way a pandas dashboard would: one reads the joined rows into a
DataFrame and groups there on every refresh; the stronger one, a dashboard
that caches its frame (as `st.cache_data` would), only groups on refresh, so
it pays the read once. Libra's first chart is compared with both.

    python bench/dashboard.py                  # 100k runs, 2M steps, 1M scores
    python bench/dashboard.py --runs 20000     # smaller, for a quick look
Goal: p95 under 200 ms for every query.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metrics.reports import queries as dashboard  # noqa: E402
from pipa import profile  # noqa: E402
from traces.store import Store  # noqa: E402

AGENTS = 8
METRICS = 10


def build(path: Path, runs: int, steps_per_run: int, scores: int) -> Store:
    store = Store(path, lock_timeout=5)
    # the generated runs alone: another bench may have added its own runs to this cached store
    if store.scalar("SELECT count(*) FROM runs WHERE run_id LIKE 'bench:%'") == runs:
        return store
    per_run = max(1, scores // runs)  # verdicts per run, one per metric
    t = time.perf_counter()
    with store.transaction() as con:
        con.execute(
            "INSERT INTO runs (run_id, native_id, source, format, agent, model, task, started_at, ended_at, outcome, "
            "reward, content_hash, n_steps, ingested_at) "
            "SELECT 'bench:' || i, i::VARCHAR, 'bench', 'libra', 'agent-' || (i % ?), 'model-x', 'task ' || (i % 500), "
            "TIMESTAMP '2026-08-01' + to_seconds(i * 60), TIMESTAMP '2026-08-01' + to_seconds(i * 60 + 30), "
            "CASE WHEN hash(i) % 3 = 0 THEN 'failure' ELSE 'success' END, (hash(i) % 3 <> 0)::INT::DOUBLE, "
            "md5(i::VARCHAR), ?, now() FROM range(?) r(i)", [AGENTS, steps_per_run, runs])
        con.execute(
            "INSERT INTO steps (run_id, idx, kind, content, tool_name, is_error) "
            "SELECT 'bench:' || r, s, CASE s % 4 WHEN 0 THEN 'user_message' WHEN 1 THEN 'tool_call' "
            "WHEN 2 THEN 'tool_result' ELSE 'agent_message' END, 'step ' || s || ' of run ' || r, "
            "CASE WHEN s % 4 IN (1, 2) THEN 'search' END, s % 4 = 2 AND hash(r, s) % 10 = 0 "
            "FROM range(?) a(r), range(?) b(s)", [runs, steps_per_run])
        con.execute("INSERT INTO metric_sets (set_id, version, name, status, created_at) "
                    "VALUES ('bench', 1, 'bench', 'approved', now())")
        con.execute("INSERT INTO metric_defs (set_id, version, position, metric_id, name, explanation, good, bad, scope, kind) "
                    "SELECT 'bench', 1, m, 'm' || m, 'Metric ' || m, 'generated', '[]', '[]', 'run', 'induced' FROM range(?) t(m)",
                    [METRICS])
        con.execute(
            "INSERT INTO scores (run_id, metric_set_id, metric_set_version, metric_id, value, evidence, reason, "
            "backend, backend_version, created_at, agent, run_at) "
            "SELECT 'bench:' || r, 'bench', 1, 'm' || m, (hash(r, m) % 3)::INT - 1, [1, 3], 'generated reason', "
            "'offline', '1', TIMESTAMP '2026-08-01' + to_seconds(r * 60), 'agent-' || (r % ?), "
            "TIMESTAMP '2026-08-01' + to_seconds(r * 60) FROM range(?) a(r), range(?) b(m)",
            [AGENTS, runs, per_run])
        pipa = ['pipa_tool_efficiency', 'pipa_task_completion']
        con.execute(
            "INSERT INTO scores (run_id, metric_set_id, metric_set_version, metric_id, value, reason, backend, "
            "backend_version, created_at, rate, agent, run_at) "
            "SELECT 'bench:' || r, 'pipa-bench', 1, p, CASE WHEN hash(r, p) % 5 = 0 THEN -1 ELSE 1 END, '', "
            "'pipa-offline', '1', now(), CASE WHEN hash(r, p) % 5 = 0 THEN 0.5 ELSE 1.0 END, 'agent-' || (r % ?), "
            "TIMESTAMP '2026-08-01' + to_seconds(r * 60) "
            "FROM range(?) a(r), unnest(?::VARCHAR[]) b(p) WHERE r % 10 = 0", [AGENTS, runs, pipa])
        con.execute(
            "INSERT INTO feedback (feedback_id, run_id, author, text, rating, origin, created_at) "
            "SELECT 'fb' || r, 'bench:' || r, 'rater', 'generated', 1 + hash(r) % 5, 'app', now() "
            "FROM range(?) a(r) WHERE r % 20 = 0", [runs])
        con.execute(
            "INSERT INTO llm_calls SELECT 'c' || i, NULL, NULL, CASE WHEN i % 3 = 0 THEN 'ground' ELSE 'judge' END, "
            "'claude', 'h', 'ok', NULL, 1000, 100, 0, 800, 0.002, 900, 1, false, "
            "TIMESTAMP '2026-08-01' + to_seconds(i * 600) FROM range(20000) t(i)")
    print(f"built {runs:,} runs, {runs * steps_per_run:,} steps, {runs * per_run:,} scores "
          f"in {time.perf_counter() - t:.0f} s", flush=True)
    return store


def timed(fn, reps: int) -> tuple[float, float]:
    fn()  # warm: the OS page cache and DuckDB's catalog
    xs = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t) * 1000)
    xs.sort()
    return statistics.median(xs), xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def pandas_frame(store: Store):
    return store.df("SELECT s.value, s.metric_id, r.agent, r.started_at FROM scores s JOIN runs r USING (run_id) "
                    "WHERE s.metric_set_id = 'bench'")


def pandas_reference(store: Store):
    """The chart's figures read and grouped afresh, as a dashboard without a cache does on every refresh."""
    return pandas_chart(pandas_frame(store))


def pandas_chart(df):
    """The chart's figures from a frame already in memory: all a caching pandas dashboard does on refresh."""
    df = df.assign(t=df["started_at"].dt.floor("D"))
    g = df.assign(pos=df.value > 0, neg=df.value < 0).groupby(["t", "agent", "metric_id"])[["pos", "neg"]].sum()
    return g.assign(score=g.pos / (g.pos + g.neg))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=2_000_000)
    ap.add_argument("--scores", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--dir", type=Path, default=ROOT / "artifacts" / "bench")
    a = ap.parse_args()
    a.dir.mkdir(parents=True, exist_ok=True)
    store = build(a.dir / f"dashboard-{a.runs}.duckdb", a.runs, max(1, a.steps // a.runs), a.scores)
    some_run = "bench:12345" if a.runs > 12345 else "bench:1"
    queries = {
        "scores over time (day, all agents)": lambda: dashboard.scores_over_time(store, "bench"),
        "scores over time (hour, one metric)": lambda: dashboard.scores_over_time(store, "bench", metric_id="m3",
                                                                                  bucket="hour"),
        "score by agent with intervals": lambda: dashboard.agent_metric_summary(store, "bench", 1),
        "runs x metrics heatmap (200 runs)": lambda: dashboard.run_metric_matrix(store, "bench", 1, limit=200),
        "drill-down: one run's evidence": lambda: dashboard.run_evidence(store, some_run, "bench", 1),
        "judge vs people": lambda: dashboard.judge_human_agreement(store, "bench", 1),
        "annotator agreement": lambda: dashboard.annotator_agreement(store),
        "judge cost by day": lambda: dashboard.judge_cost(store),
        "PIPA profile per agent": lambda: profile.agent_profile(store),
        "PIPA vs reward (point-biserial)": lambda: profile.reward_relation(store),
        "metric sets picker": lambda: dashboard.score_sets(store),
    }
    print(f"{'query':<40}{'p50 ms':>10}{'p95 ms':>10}")
    worst = 0.0
    first = None
    for name, fn in queries.items():
        p50, p95 = timed(fn, a.reps)
        first = first or p50
        worst = max(worst, p95)
        print(f"{name:<40}{p50:>10.1f}{p95:>10.1f}", flush=True)
    t = time.perf_counter()
    frame = pandas_frame(store)  # the cached dashboard's one read, paid on its first view only
    load_ms = (time.perf_counter() - t) * 1000
    fresh50, fresh95 = timed(lambda: pandas_reference(store), max(3, a.reps // 10))
    cached50, cached95 = timed(lambda: pandas_chart(frame), a.reps)
    print(f"{'reference: pandas, read on every refresh':<40}{fresh50:>10.1f}{fresh95:>10.1f}")
    print(f"{'reference: pandas, cached frame':<40}{cached50:>10.1f}{cached95:>10.1f}"
          f"   (its first view also reads the frame: {load_ms:.0f} ms, {len(frame):,} rows in memory)")
    print(f"first chart, Libra vs pandas by p50: {fresh50 / first:.1f}x faster than reading on every refresh; "
          f"{cached50 / first:.2f}x the speed of the cached frame (the strongest fair reference here"
          f"{'' if cached50 > first else '; Libra does not beat it'})")
    print(f"worst p95 {worst:.1f} ms; goal < 200 ms: {'met' if worst < 200 else 'NOT met'}")


if __name__ == "__main__":
    main()
