"""The similarity judge (offline, no key needed).

It embeds the run's steps and the metric's good and bad behaviour examples; a
metric applies when some step is close to its examples, and the verdict
follows whether the closest evidence resembles the good or the bad examples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from metrics.definitions import Metric, MetricSet
from metrics.judges.base import Judgement, RunView, Verdict, step_text

class SimilarityJudge:
    """Offline judge: nearest good/bad behaviour examples among the run's steps.

    For each metric, s_good and s_bad are the highest cosine similarities
    between any (focus) step and the metric's good and bad examples. The
    metric applies when max(s_good, s_bad) >= `applies_at`; the verdict is the
    sign of s_good - s_bad when that gap is at least `margin`, otherwise 0.
    Instructions planted in a trace carry no weight here: only resemblance
    to people's examples counts.
    """

    backend = "offline-similarity"
    version = "1"

    def __init__(self, embedder, applies_at: float = 0.45, margin: float = 0.03):
        self.embedder = embedder
        self.applies_at = applies_at
        self.margin = margin

    def _anchors(self, m: Metric) -> tuple[list[str], list[str]]:
        good = [e.text for e in m.good] or []
        bad = [e.text for e in m.bad] or []
        return good, bad

    def judge(self, runs: Sequence[RunView], metric_set: MetricSet,
              progress: Callable[[int, int], None] | None = None) -> list[Judgement]:
        anchors = [self._anchors(m) for m in metric_set.metrics]
        texts = [t for g, b in anchors for t in g + b]
        A = self.embedder.embed(texts) if texts else np.zeros((0, 1), np.float32)  # noqa: N806
        idxs = [[j for j, s in enumerate(v.steps) if v.focus is None or s.actor == v.focus] for v in runs]
        texts = [step_text(v.steps[j]) for v, idx in zip(runs, idxs, strict=True) for j in idx]
        E = self.embedder.embed(texts) if texts else np.zeros((0, 1), np.float32)  # noqa: N806 - one call for all
        out, start = [], 0
        for i, (view, idx) in enumerate(zip(runs, idxs, strict=True)):
            if not idx:
                out.append(Judgement(view.run_id, tuple(Verdict(m.metric_id, 0, (), "no steps to judge")
                                                        for m in metric_set.metrics)))
                continue
            S = E[start:start + len(idx)]  # noqa: N806
            start += len(idx)
            sims = S @ A.T if len(A) else np.zeros((len(idx), 0))
            verdicts, k = [], 0
            for m, (good, bad) in zip(metric_set.metrics, anchors, strict=True):
                g = sims[:, k:k + len(good)]
                b = sims[:, k + len(good):k + len(good) + len(bad)]
                k += len(good) + len(bad)
                sg = float(g.max()) if g.size else -1.0
                sb = float(b.max()) if b.size else -1.0
                if max(sg, sb) < self.applies_at:
                    verdicts.append(Verdict(m.metric_id, 0, (), f"no step resembles {m.name!r} examples",
                                            confidence=round(max(sg, sb), 3)))
                    continue
                if abs(sg - sb) < self.margin:
                    verdicts.append(Verdict(m.metric_id, 0, (), "evidence resembles good and bad examples alike",
                                            confidence=round(abs(sg - sb), 3)))
                    continue
                better = g if sg > sb else b
                step = idx[int(better.max(axis=1).argmax())]
                value = 1 if sg > sb else -1
                ex = (good if value > 0 else bad)[int(better.max(axis=0).argmax())]
                verdicts.append(Verdict(
                    m.metric_id, value, (step,),
                    f"step {step} resembles the {'good' if value > 0 else 'bad'} example "
                    f"\u201c{ex[:120]}\u201d ({max(sg, sb):.2f} vs {min(sg, sb):.2f})",
                    confidence=round(abs(sg - sb), 3)))
            out.append(Judgement(view.run_id, tuple(verdicts)))
            if progress:
                progress(i + 1, len(runs))
        return out
