"""Annotators under load: save, edit and delete latency while an ingest and a scoring job write the store.

    python bench/annotate_load.py [--db PATH] [--runs 6000] [--annotators 16] [--notes 1000] [--json]

Sixteen annotators (two processes of eight threads, like two app servers) save
notes; right after a save, some edit the note and some delete it, the moments
a journal and a store read non-atomically once lost. Meanwhile `libra ingest`
adds runs and `libra pipa score` scores them, in processes of their own.
Prints each action's p50/p95 and checks that every note, edit and delete
landed exactly once. No reference runs beside it: no peer keeps annotators'
notes in the same store as a bulk ingest.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EDIT_P, DELETE_P = 0.3, 0.15  # of saves: edited right after, deleted right after


def annotate(db: str, proc: int, threads: int, per: int, runs: list[str]) -> dict:
    """One process of annotator threads; returns latencies by action and what it did."""
    from traces.annotation import feedback
    from traces.store import Store

    store = Store(db, lock_timeout=120)
    lat: dict[str, list[float]] = {"save": [], "edit": [], "delete": []}
    did = {"saved": 0, "edited": 0, "deleted": 0}
    errors: list[str] = []
    lock = threading.Lock()

    def timed(action: str, fn) -> tuple[bool, object]:
        t0 = time.perf_counter()
        try:
            return True, fn()
        except Exception as exc:  # noqa: BLE001 - counted: the run fails on any
            errors.append(f"{action}: {exc!r}")
            return False, None
        finally:
            with lock:
                lat[action].append(time.perf_counter() - t0)

    def annotator(t: int) -> None:
        rng = random.Random(proc * 100 + t)
        me = f"load-{proc}-{t}"
        for i in range(per):
            text = f"load note {proc}/{t}/{i}"
            ok, fid = timed("save", lambda: feedback.add(store, rng.choice(runs), me, text,
                                                         steps=[rng.randint(0, 3)], rating=rng.randint(1, 5)))
            if not ok:
                continue
            with lock:
                did["saved"] += 1
            roll = rng.random()
            action = "edit" if roll < EDIT_P else "delete" if roll < EDIT_P + DELETE_P else None
            if action == "edit":
                ok, _ = timed("edit", lambda: feedback.edit(store, fid, me, text=text + " (edited)"))
            elif action == "delete":
                ok, _ = timed("delete", lambda: feedback.delete(store, fid, me))
            if action and ok:
                with lock:
                    did[action + "ed" if action == "edit" else "deleted"] += 1
            time.sleep(rng.uniform(0, 0.02))

    ts = [threading.Thread(target=annotator, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return {"errors": errors, "latency": lat, **did}


def _quantiles(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "p50_ms": xs[len(xs) // 2] * 1000, "p95_ms": xs[int(len(xs) * 0.95)] * 1000,
            "max_ms": xs[-1] * 1000}


def run(db: str, work: Path, n_runs: int = 6000, annotators: int = 16, notes: int = 1000) -> dict:
    """The whole scenario on the store at `db`; returns latencies and the checks' inputs."""
    from libra.demo import build_demo, generate_runs
    from traces.annotation import feedback
    from traces.export import write_jsonl
    from traces.store import Store

    s = Store(db)
    build_demo(s, n=80)
    runs = [r for r, in s.execute("SELECT run_id FROM runs")]
    big = work / "incoming.jsonl"
    write_jsonl(generate_runs(n_runs, seed=9, with_feedback=False), big)
    env = dict(os.environ)
    cli = [sys.executable, "-m", "libra.cli.main"]
    ingest = subprocess.Popen([*cli, "ingest", "-q", "--batch-steps", "5000", "--db", db, str(big)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    scoring = subprocess.Popen([*cli, "pipa", "score", "--backend", "offline", "--db", db],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    procs, threads = 2, annotators // 2
    per = [notes // annotators + (1 if p * threads + t < notes % annotators else 0)
           for p in range(procs) for t in range(threads)]
    workers = [subprocess.Popen([sys.executable, __file__, "--worker", db, str(p), str(threads),
                                 str(max(per[p * threads:(p + 1) * threads])), json.dumps(runs)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for p in range(procs)]
    parts = []
    for w in workers:
        out, err = w.communicate(timeout=1800)
        if w.returncode != 0:
            raise RuntimeError(f"annotators exited {w.returncode}: {err.decode()[-3000:]}")
        parts.append(json.loads(out.decode().strip().splitlines()[-1]))
    for p, name in ((ingest, "ingest"), (scoring, "scoring")):
        _, err = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(f"{name}: {err.decode()[-3000:]}")
    feedback.flush(s)
    lat = {a: [x for part in parts for x in part["latency"][a]] for a in ("save", "edit", "delete")}
    stored = s.execute("SELECT count(*), count(DISTINCT text), count(*) FILTER (WHERE deleted_at IS NOT NULL), "
                       "count(*) FILTER (WHERE text LIKE '% (edited)') FROM feedback WHERE author LIKE 'load-%'")[0]
    history = s.execute("SELECT action, count(*) FROM feedback_history WHERE edited_by LIKE 'load-%' GROUP BY ALL")
    return {
        "errors": [e for part in parts for e in part["errors"]],
        "did": {k: sum(part[k] for part in parts) for k in ("saved", "edited", "deleted")},
        "stored": dict(zip(("notes", "distinct", "deleted", "edited"), stored, strict=True)),
        "history": dict(history),
        "runs": s.scalar("SELECT count(*) FROM runs"),
        "latency": {a: _quantiles(v) for a, v in lat.items()},
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        db, proc, threads, per, runs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), \
            json.loads(sys.argv[6])
        print(json.dumps(annotate(db, proc, threads, per, runs)))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db")
    ap.add_argument("--runs", type=int, default=6000)
    ap.add_argument("--annotators", type=int, default=16)
    ap.add_argument("--notes", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        res = run(args.db or str(Path(tmp) / "load.duckdb"), Path(tmp), args.runs, args.annotators, args.notes)
    if args.json:
        print(json.dumps(res))
        return
    for action, q in res["latency"].items():
        if q["n"]:
            print(f"{action:7s} n={q['n']:5d}  p50 {q['p50_ms']:6.0f} ms  p95 {q['p95_ms']:6.0f} ms  "
                  f"max {q['max_ms']:6.0f} ms")
    print(f"notes {res['stored']}, did {res['did']}, errors {len(res['errors'])}")


if __name__ == "__main__":
    main()
