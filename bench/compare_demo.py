"""Release comparison on the demo corpus, end to end: induced metrics, offline judge, `libra.compare`.

The demo generator draws each behaviour per run with a probability per release
(`libra.demo.PROFILES`): with `--release mixed` (the default here) travel-concierge v2 improves
five behaviours, regresses on one (communication) and keeps one (efficiency); with `--release demo`,
as `make demo` builds it, v2 improves all seven. This builds the demo store,
induces metrics offline from its feedback, approves them, scores every run with
the offline judge, and compares v1 with v2. Each induced metric is matched to the
behaviour whose latent good/bad it agrees with most across runs, so the found
changes can be checked against the generator's: the figure is how many of the
generator's changes the whole pipeline recovers and how many it flags that the
generator did not put there. Beside it, in the same run, the same comparison on
the latent behaviours themselves (a perfect judge), and on a judge that reads
nothing (every verdict a coin flip), which must flag nothing.

    python bench/compare_demo.py [--runs 480] [--alpha 0.05]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import libra  # noqa: E402
from autolibra.induce import InduceConfig  # noqa: E402
from libra.demo import MIXED_RELEASE, PROFILES, TRAITS, build_demo, latent_traits  # noqa: E402
from metrics import sets  # noqa: E402
from metrics.definitions import Metric, MetricSet  # noqa: E402
from metrics.judges.recorded import RecordedJudge  # noqa: E402
from metrics.scoring import score_runs  # noqa: E402
from traces.store import Store  # noqa: E402

A, B = "travel-concierge@v1", "travel-concierge@v2"


def truth(profiles: dict = PROFILES) -> tuple[set[str], set[str]]:
    p1, p2 = profiles[("travel-concierge", "v1")], profiles[("travel-concierge", "v2")]
    return {t for t in TRAITS if p2[t] > p1[t]}, {t for t in TRAITS if p2[t] < p1[t]}


def trait_of(store: Store, set_id: str, version: int) -> dict[str, str]:
    """Each metric's behaviour: the one most of the remarks it was induced from are about (the demo keeps
    each remark's behaviour with its note), matched by the metric's example texts."""
    from collections import Counter

    from metrics import sets as sets_
    from traces.annotation import feedback

    bullets = [(str(b["text"]).lower(), b["trait"]) for f in feedback.load(store)
               for b in (f.metadata or {}).get("bullets", [])]
    out = {}
    for m in sets_.load(store, set_id, version).metrics:
        votes: Counter = Counter()
        for e in m.good + m.bad:
            text = e.text.lower().strip(" .-")
            hit = next((t for b, t in bullets if text and (text in b or b.strip(" .") in text)), None)
            if hit:
                votes[hit] += 1
        out[m.metric_id] = votes.most_common(1)[0][0] if votes else ""
    return out


def report(title: str, c, mapping: dict[str, str], profiles: dict) -> None:
    better, worse = truth(profiles)
    found_b = {mapping.get(m, "") for m in c.improved} - {""}
    found_w = {mapping.get(m, "") for m in c.regressed} - {""}
    wrong = [m for m in c.improved if mapping.get(m) not in better] + \
            [m for m in c.regressed if mapping.get(m) not in worse]
    print(f"\n{title}: {len(c.metrics)} metrics, set {c.set_id} v{c.version}")
    for m in c.metrics:
        print(f"  {m.name[:48]:48s} → {mapping.get(m.metric_id) or '(no behaviour)':15s} "
              f"{m.score_a:.2f} → {m.score_b:.2f}  {m.diff:+.2f} [{m.lo:+.2f}, {m.hi:+.2f}]  "
              f"p_holm {m.p_adjusted:.3f}  {m.verdict}")
    print(f"  improvements found: {sorted(found_b)} of {sorted(better)}; regressions found: {sorted(found_w)} "
          f"of {sorted(worse)}; flagged against the generator: {len(wrong)} {wrong}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=480)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--release", choices=["demo", "mixed"], default="mixed",
                    help="demo: v2 better at every behaviour (make demo's corpus); mixed: v2 better at five, "
                         "worse at one, the same at one (libra.demo.MIXED_RELEASE)")
    args = ap.parse_args()
    profiles = MIXED_RELEASE if args.release == "mixed" else PROFILES
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "cmp.duckdb")
        build_demo(store, n=args.runs, seed=7, profiles=profiles)
        traits = latent_traits(store)
        res = libra.induce(store, backend="offline", config=InduceConfig(random_state=0), set_id="induced",
                           name="Demo metrics")
        sets.approve(store, res.metric_set.set_id, res.metric_set.version, "admin")
        libra.score(store, backend="offline")
        c = libra.compare(store, A, B, set_id="induced", alpha=args.alpha)
        report("induced metrics, offline judge", c, trait_of(store, "induced", c.version), profiles)
        oracle = sets.save(store, MetricSet("latent", 1, "Latent behaviours", tuple(
            Metric(t, t, f"{t}?") for t in TRAITS)), approved_by="admin")
        score_runs(store, oracle, RecordedJudge(traits, "latent"))
        report("latent behaviours (a perfect judge)", libra.compare(store, A, B, set_id="latent", alpha=args.alpha),
               {t: t for t in TRAITS}, profiles)
        rng = random.Random(0)
        coins = {r: {t: rng.choice([-1, 1]) for t in TRAITS} for r in traits}
        flips = sets.save(store, MetricSet("coin", 1, "Coin flips", tuple(Metric(t, t, f"{t}?") for t in TRAITS)),
                          approved_by="admin")
        score_runs(store, flips, RecordedJudge(coins, "coin"))
        report("a judge that reads nothing (coin flips)", libra.compare(store, A, B, set_id="coin", alpha=args.alpha),
               {t: t for t in TRAITS}, profiles)


if __name__ == "__main__":
    main()
