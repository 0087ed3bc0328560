"""Grounding, composed: which steps of a run a remark is about, ranked.

The same locator induction uses (`autolibra.locator.StepLocator`: the chosen
fitted version's weights for the run's format, else the default weights, on
the store's embedder) behind one call, for notebooks, `libra ground` and the
app's "suggest steps" button. Fitting, saving and choosing versions is here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from traces.model import Run
from traces.store import Store

if TYPE_CHECKING:
    from autolibra.locators import LocatorFit


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
    from autolibra.locator import explicit_steps
    from autolibra.locators import locator_for
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
    scores = locator_for(store, default_embedder(store), run.format).scores(text, steps, focus)
    p = np.exp(scores - scores.max())
    p /= p.sum()
    named = set(explicit_steps(text, len(steps)))
    order = sorted(range(len(steps)), key=lambda i: (i not in named, -scores[i]))[:k]
    return [StepScore(i, float(scores[i]), float(p[i]), str(steps[i].kind), steps[i].actor, i in named,
                      (steps[i].content or steps[i].tool_name or "")[:160]) for i in order]


def fit_locator(store: Store, *, by: str | None = None, choose: bool = True,
                progress: Callable[[int, int], None] | None = None) -> LocatorFit:
    """Fit the step locator on every note people anchored to steps, per format; save it as the next version.

    The report says, per trace format, the default and fitted weights' accuracy
    under cross-validation grouped by run; a format keeps the default weights
    where fitting did not help. With `choose`, grounding uses the new version.
    """
    from autolibra import locators
    from metrics.embeddings import default_embedder

    fit = locators.fit_per_format(locators.anchored_examples(store), default_embedder(store), progress=progress)
    return locators.save(store, fit, by=by, choose=choose)


def locator_versions(store: Store) -> list[LocatorFit]:
    from autolibra import locators

    return locators.versions(store)


def choose_locator(store: Store, version: int | None) -> None:
    """Ground with fitted version `version` (None: the default weights)."""
    from autolibra import locators

    locators.choose(store, version)
