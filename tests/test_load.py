"""16 annotators save 1,000 notes, editing and deleting some right after, while an ingest and a
scoring job write the same store: every note, edit and delete lands once (bench/annotate_load.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench" / "annotate_load.py"


def _bench():
    spec = importlib.util.spec_from_file_location("annotate_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(1500)
def test_sixteen_annotators_an_ingest_and_a_scorer_lose_nothing(tmp_path, location, backend):
    # a lake commits each batch through PostgreSQL: a quarter of the runs keeps the tier's time
    n_runs = 6000 if backend == "duckdb" else 1500
    res = _bench().run(location, tmp_path, n_runs=n_runs, annotators=16, notes=1000)
    assert res["errors"] == [], res["errors"][:5]
    did, stored, history = res["did"], res["stored"], res["history"]
    assert did["saved"] == 1000 and did["edited"] > 100 and did["deleted"] > 50, did
    assert stored["notes"] == stored["distinct"] == 1000, "every note persisted exactly once"
    assert stored["edited"] == did["edited"] and stored["deleted"] == did["deleted"]
    assert history == {"create": 1000, "edit": did["edited"], "delete": did["deleted"]}
    assert res["runs"] == 80 + n_runs
    print({a: {k: round(v) for k, v in q.items()} for a, q in res["latency"].items()})
