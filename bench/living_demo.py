"""Living metrics on the demo corpus: coverage of new feedback before and after a proposed update.

Metrics are induced offline from the demo's feedback and approved; then a month of
later runs like the first (the control) and a month in which the agents start showing a
behaviour people remark on that no metric is about (leaking payment details). The
figures: coverage of the new remarks per period, why remarks went uncovered, the
proposal's changes, coverage of the same remarks once the metrics it adds for the new
behaviour are approved, and coverage of a further month's remarks the update was not
built from.

    python bench/living_demo.py
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import libra  # noqa: E402
from autolibra.induce import InduceConfig  # noqa: E402
from libra import accounts  # noqa: E402
from libra.demo import BASE_TIME, build_demo, generate_runs  # noqa: E402
from metrics import sets  # noqa: E402
from traces.ingest import ingest_runs  # noqa: E402
from traces.store import Store  # noqa: E402

NEW = re.compile(r"card|privacy|cvv|payment", re.I)


def period(cov, start_day: int, end_day: int) -> tuple[float, int]:
    w = cov.weekly[(cov.weekly["week"] >= BASE_TIME + timedelta(days=start_day - 37))
                   & (cov.weekly["week"] < BASE_TIME + timedelta(days=end_day - 30))]
    return float(w["covered"].sum() / max(1, w["remarks"].sum())), int(w["remarks"].sum())


def main() -> None:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "living.duckdb")
        build_demo(store, n=200, seed=7)
        accounts.add_user(store, "admin", "admin password", "admin")
        res = libra.induce(store, backend="offline", config=InduceConfig(random_state=0), set_id="induced")
        sets.approve(store, "induced", res.metric_set.version, "admin")
        libra.score(store, backend="offline")
        print(f"induced {len(res.metric_set.metrics)} metrics; held-out coverage at induction "
              f"{res.summary()['heldout']['coverage']:.3f}")
        ingest_runs(store, generate_runs(160, seed=20, days_later=40))
        ingest_runs(store, generate_runs(160, seed=21, new_behaviour=True, days_later=80))
        cov = libra.new_feedback_coverage(store, backend="offline")
        (c1, n1), (c2, n2) = period(cov, 40, 75), period(cov, 82, 120)
        print(f"coverage of new feedback: control month {c1:.3f} ({n1} remarks), month with the new behaviour "
              f"{c2:.3f} ({n2} remarks); uncovered because: {dict(cov.reasons)}")
        print(cov.weekly.round(3).to_string(index=False))
        p = libra.propose_update(store, backend="offline")
        print(f"proposal: {len(p.changes)} changes; coverage of the new remarks {p.before.coverage:.3f} → "
              f"{p.after.coverage:.3f}, redundancy {p.before.redundancy:.3f} → {p.after.redundancy:.3f}")
        about = []
        for i, c in enumerate(p.changes):
            new = sum(NEW.search(r) is not None for r in c.remarks)
            if c.action == "add" and new > len(c.remarks) / 2:
                about.append(i)
            print(f"  [{i}] {c.title}: coverage {c.coverage_delta:+.3f}, redundancy {c.redundancy_delta:+.3f}; "
                  f"{new}/{len(c.remarks)} of its remarks about the new behaviour")
        new_set = libra.approve_update(store, p, "admin", password="admin password", accepted=about,
                                       backend="offline")
        again = libra.new_feedback_coverage(store, "induced", new_set.version, since=cov.since, backend="offline")
        print(f"approved v{new_set.version} with the {len(about)} metrics for the new behaviour: month with the new "
              f"behaviour {period(again, 82, 120)[0]:.3f} (was {c2:.3f}); control month {period(again, 40, 75)[0]:.3f}")
        ingest_runs(store, generate_runs(160, seed=33, new_behaviour=True, days_later=120))
        later = libra.new_feedback_coverage(store, backend="offline")
        print(f"a later month the update was not built from: {later.coverage:.3f} over {later.evaluation.aspects} "
              f"remarks (the month with the new behaviour before the update: {c2:.3f})")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
