"""Grounding, composed: which steps of a run a remark is about, ranked.

The same locator induction uses (`autolibra.locator.StepLocator`, its default
weights, on the store's embedder) behind one call, for notebooks, `libra
ground` and the app's "suggest steps" button.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from traces.model import Run
from traces.store import Store


@dataclass(frozen=True)
class StepScore:
    idx: int
    score: float  # the locator's score
    probability: float  # softmax over the run's steps: how the locator splits its belief
    kind: str
    actor: str | None
    explicit: bool  # the remark names this step ("step 4")
    preview: str


def ground(store: Store, run: Run | str, text: str, *, k: int = 5, focus: str | None = None) -> list[StepScore]:
    """The `k` steps of `run` (a Run, or a run id in `store`) the remark is likeliest about, best first."""
    from autolibra.locator import StepLocator, explicit_steps
    from metrics.embeddings import default_embedder
    from traces.export import load_runs

    if isinstance(run, str):
        found = load_runs(store, [run])
        if run not in found:
            raise KeyError(f"no run {run!r} in the store")
        run = found[run]
    steps = run.steps
    if not steps or not text.strip():
        return []
    scores = StepLocator(default_embedder(store)).scores(text, steps, focus)
    p = np.exp(scores - scores.max())
    p /= p.sum()
    named = set(explicit_steps(text, len(steps)))
    order = sorted(range(len(steps)), key=lambda i: (i not in named, -scores[i]))[:k]
    return [StepScore(i, float(scores[i]), float(p[i]), str(steps[i].kind), steps[i].actor, i in named,
                      (steps[i].content or steps[i].tool_name or "")[:160]) for i in order]
