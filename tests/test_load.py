"""16 annotators save 1,000 notes while an ingest job writes the same store: every note lands once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from traces.annotation import feedback
from libra.demo import build_demo, generate_runs
from traces.export import write_jsonl
from traces.store import Store

pytestmark = pytest.mark.slow

WORKER = r"""
import json, random, sys, threading, time
from traces.annotation import feedback
from traces.store import Store

db, proc, threads, per, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
store = Store(db, lock_timeout=120)
lat, errors = [], []

def annotator(t):
    rng = random.Random(proc * 100 + t)
    for i in range(per):
        t0 = time.perf_counter()
        try:
            feedback.add(store, rng.choice(runs), f"load-{proc}-{t}", f"load note {proc}/{t}/{i}",
                         steps=[rng.randint(0, 3)], rating=rng.randint(1, 5))
        except Exception as exc:
            errors.append(repr(exc))
        lat.append(time.perf_counter() - t0)
        time.sleep(rng.uniform(0, 0.02))

ts = [threading.Thread(target=annotator, args=(t,)) for t in range(threads)]
[t.start() for t in ts]
[t.join() for t in ts]
lat.sort()
print(json.dumps({"errors": errors, "p50": lat[len(lat) // 2], "p95": lat[int(len(lat) * 0.95)], "n": len(lat)}))
"""


def test_sixteen_annotators_and_an_ingest_lose_nothing(tmp_path, location):
    db = location
    s = Store(db)
    build_demo(s, n=80)
    runs = [r for r, in s.execute("SELECT run_id FROM runs")]
    big = tmp_path / "incoming.jsonl"
    write_jsonl(generate_runs(6000, seed=9, with_feedback=False), big)
    env = dict(os.environ)
    ingest = subprocess.Popen([sys.executable, "-m", "libra.cli.main", "ingest", "-q", "--batch-steps", "5000",
                               "--db", db, str(big)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, db, str(p), "8", "63" if p == 0 else "62",
                                 json.dumps(runs)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for p in range(2)]
    results = []
    for w in workers:
        out, err = w.communicate(timeout=900)
        assert w.returncode == 0, err.decode()[-3000:]
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    _, err = ingest.communicate(timeout=900)
    assert ingest.returncode == 0, err.decode()[-3000:]
    assert all(not r["errors"] for r in results), results
    assert sum(r["n"] for r in results) == 16 * 63 - 8  # 8 x 63 + 8 x 62 = 1000
    feedback.flush(s)
    rows = s.execute("SELECT text, count(*) FROM feedback WHERE author LIKE 'load-%' GROUP BY text")
    assert len(rows) == 1000 and all(n == 1 for _, n in rows), "every note persisted exactly once"
    assert s.scalar("SELECT count(*) FROM feedback_history WHERE edited_by LIKE 'load-%'") == 1000
    assert s.scalar("SELECT count(*) FROM runs") == 80 + 6000
    print(f"save latency p50 {max(r['p50'] for r in results) * 1000:.0f} ms, "
          f"p95 {max(r['p95'] for r in results) * 1000:.0f} ms")
