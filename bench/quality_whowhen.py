"""Grounding failure reasons to steps on Who&When, offline.

Each log's `mistake_reason` is grounded to one step and compared with the
annotated `mistake_step`: exact and within-one accuracy, for the nearest step
by embedding (the baseline), the step locator with its default weights, and
the locator fitted on the other logs (5-fold cross-validation, several seeds).

    python bench/quality_whowhen.py [--data ../shared/data/who-and-when]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.model_selection import KFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autolibra.locator import StepLocator  # noqa: E402
from autolibra.locators import hits  # noqa: E402
from metrics.embeddings import default_embedder  # noqa: E402
from metrics.judges.base import step_text  # noqa: E402
from traces.export import iter_runs  # noqa: E402
from traces.ingest import ingest  # noqa: E402
from traces.store import Store  # noqa: E402


def accuracy(pred, gold) -> tuple[float, float]:
    return hits(pred, [[g] for g in gold])


def evaluate(data: Path, seeds=(0, 1, 2)) -> dict:
    store = Store(":memory:")
    ingest(store, [data])
    emb = default_embedder(store)
    runs = [r for r in iter_runs(store) if r.gold and "mistake_step" in r.gold]
    examples = [(r.gold["mistake_reason"], r.steps, [r.gold["mistake_step"]], None) for r in runs]
    gold = [r.gold["mistake_step"] for r in runs]
    base = []
    for text, steps, _, _ in examples:
        v = emb.embed([text] + [step_text(s) for s in steps])
        base.append(int(np.argmax(v[1:] @ v[0])))
    default = [StepLocator(emb).locate(t, s)[0] for t, s, _, _ in examples]
    fitted = []
    for seed in seeds:
        pred = [0] * len(examples)
        for tr, te in KFold(5, shuffle=True, random_state=seed).split(examples):
            loc = StepLocator(emb, random_state=seed).fit([examples[i] for i in tr])
            for i in te:
                pred[i] = loc.locate(examples[i][0], examples[i][1])[0]
        fitted.append(accuracy(pred, gold))
    from autolibra.locators import AnchoredNote, fit_per_format

    per_format = fit_per_format([AnchoredNote(r.format, r.run_id(), r.gold["mistake_reason"], r.steps,
                                         (r.gold["mistake_step"],)) for r in runs], emb).report
    return {"logs": len(runs), "baseline": accuracy(base, gold), "default": accuracy(default, gold),
            "fitted": tuple(np.mean(fitted, axis=0)), "fitted_runs": fitted, "per_format": per_format}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "who-and-when")
    r = evaluate(ap.parse_args().data)
    print(f"Who&When, {r['logs']} logs: grounding mistake_reason to mistake_step")
    print(f"{'method':<48}{'exact':>8}{'±1':>8}")
    print(f"{'nearest step by embedding (baseline)':<48}{r['baseline'][0]:>8.3f}{r['baseline'][1]:>8.3f}")
    print(f"{'step locator, default weights (no training)':<48}{r['default'][0]:>8.3f}{r['default'][1]:>8.3f}")
    print(f"{'step locator, fitted (5-fold CV, mean of 3 seeds)':<48}{r['fitted'][0]:>8.3f}{r['fitted'][1]:>8.3f}")
    for fmt, f in r["per_format"].items():
        print(f"libra locator fit on these logs, format {fmt} ({f['examples']} notes, 5 folds by run): default "
              f"{f['default_exact']:.3f} / {f['default_within1']:.3f}, fitted {f['fitted_exact']:.3f} / "
              f"{f['fitted_within1']:.3f}: uses the {f['uses']} weights")


if __name__ == "__main__":
    main()
