"""Finding the steps a piece of feedback talks about.

Explicit references ("step 4", "[4]"), quoted text, named actors and tools,
word overlap and embedding similarity, combined by a `StepLocator` with
sensible default weights that can be fitted on feedback people anchored to
steps (the app collects it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from autolibra.signs import WORD
from metrics.judges.base import step_text
from traces.model import Step

_STEP_REF = re.compile(r"\b(?:step|turn|message)s?\s*#?\s*(\d+)(?:\s*(?:-|to|and|–)\s*(\d+))?", re.IGNORECASE)
_BRACKET_REF = re.compile(r"\[(\d+)\]")
_QUOTE = re.compile(r"[\"“'‘`]([^\"”'’`]{3,120})[\"”'’`]")
_STOP = {"the", "a", "an", "and", "or", "of", "to", "in", "on", "for", "it", "is", "was", "were", "be", "that",
         "this", "with", "as", "at", "by", "from", "agent", "user", "did", "does", "has", "have", "had", "its",
         "their", "they", "he", "she", "his", "her", "which", "when", "then", "than", "should", "would", "could"}
KINDS = ("user_message", "agent_message", "thought", "tool_call", "tool_result", "observation", "system")


def explicit_steps(text: str, n_steps: int) -> list[int]:
    refs: list[int] = []
    for m in _STEP_REF.finditer(text):
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        refs.extend(range(min(a, b), min(max(a, b), a + 20) + 1))
    refs.extend(int(m.group(1)) for m in _BRACKET_REF.finditer(text))
    return sorted({r for r in refs if 0 <= r < n_steps})


def _content_words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if len(w) > 2 and w not in _STOP}


def _actor_key(actor: str | None) -> str | None:
    if not actor:
        return None
    return re.sub(r"[^a-z]", "", actor.lower()) or None


FEATURES = ("sim", "sim_z", "sim_best", "explicit", "quote", "actor", "tool", "overlap", "focus", "position",
            "actor_first", "actor_order", "actor_sim_rank", "neighbour_sim", "entities",
            *[f"kind_{k}" for k in KINDS],
            # where a fault was first introduced, against the steps that only repeat it
            "sim_record", "first_near_best", "actor_turn_1", "actor_turn_2", "actor_turn_3")
_ENTITY = re.compile(r"\b(?:[A-Z][a-zA-Z0-9]+(?:\s+[A-Z][a-zA-Z0-9]+)*|\d[\d.,:%$]*)\b")


def step_features(text: str, steps: Sequence[Step], sims: np.ndarray, focus: str | None = None) -> np.ndarray:
    """One feature row per step for how likely the feedback `text` is about it."""
    n = len(steps)
    low = text.lower()
    squashed = re.sub(r"[^a-z]", "", low)
    quotes = [q.lower() for q in _QUOTE.findall(text)]
    words = _content_words(text)
    refs = set(explicit_steps(text, n))
    z = (sims - sims.mean()) / (sims.std() + 1e-6) if n > 1 else np.zeros(n)
    best = sims.max() if n else 0
    keys = [_actor_key(s.actor) for s in steps]
    named = [i for i, k in enumerate(keys) if k and len(k) > 2 and k in squashed]
    first_named = named[0] if named else None
    order_named = {i: r / max(len(named) - 1, 1) for r, i in enumerate(named)}
    sim_rank = {i: r / max(len(named) - 1, 1) for r, i in enumerate(sorted(named, key=lambda j: -sims[j]))}
    entities = {e.lower() for e in _ENTITY.findall(text) if len(e) > 2} - {w for w in _STOP}
    # A remark describes a fault that later steps repeat; similarity finds the whole chain. The
    # step that introduced it is the first to come this close: a new high of similarity so far,
    # or the earliest within a hair of the best.
    record = np.zeros(n)
    if n:
        record[1:] = sims[1:] > np.maximum.accumulate(sims)[:-1]
        record[0] = 1.0
    near = np.flatnonzero(sims >= best - 0.05) if n else np.array([], int)
    first_near = int(near[0]) if len(near) else -1
    turn = {i: r for r, i in enumerate(named)}
    rows = []
    for i, s in enumerate(steps):
        content = (s.content or "").lower()
        args = str(s.tool_args).lower() if s.tool_args is not None else ""
        ak = _actor_key(s.actor)
        sw = _content_words(content[:3000] + " " + args[:500])
        rows.append([
            sims[i], z[i], 1.0 if sims[i] >= best - 1e-9 else 0.0,
            1.0 if i in refs else 0.0,
            1.0 if any(q in content or q in args for q in quotes) else 0.0,
            1.0 if ak and len(ak) > 2 and ak in squashed else 0.0,
            1.0 if s.tool_name and s.tool_name.lower() in low else 0.0,
            len(words & sw) / (len(words) + 1e-6) if words else 0.0,
            1.0 if focus is None or s.actor == focus else 0.0,
            i / max(n - 1, 1),
            1.0 if i == first_named else 0.0,
            1.0 - order_named[i] if i in order_named else 0.0,
            1.0 - sim_rank[i] if i in sim_rank else 0.0,
            max(sims[i - 1] if i > 0 else 0.0, sims[i + 1] if i + 1 < n else 0.0),
            sum(e in content for e in entities) / (len(entities) + 1e-6) if entities else 0.0,
            *[1.0 if (s.kind if isinstance(s.kind, str) else str(s.kind)) == k else 0.0 for k in KINDS],
            record[i], 1.0 if i == first_near else 0.0,
            *[1.0 if turn.get(i) == t else 0.0 for t in (0, 1, 2)],
        ])
    return np.asarray(rows, dtype=np.float64).reshape(n, len(FEATURES))


# Weights used before any fitting: similarity and explicit signals dominate; the
# scene-setting steps (system prompt, the user's request) are rarely what feedback is about.
DEFAULT_WEIGHTS = dict(sim=4.0, sim_z=1.0, sim_best=0.5, explicit=6.0, quote=3.0, actor=1.5, tool=1.5,
                       overlap=2.0, focus=2.0, position=0.0, actor_first=0.5, actor_order=0.5,
                       actor_sim_rank=1.0, neighbour_sim=0.5, entities=1.5,
                       kind_user_message=-1.5, kind_system=-3.0,
                       kind_agent_message=0.3, kind_thought=0.0, kind_tool_call=0.3, kind_tool_result=0.0,
                       kind_observation=0.0, sim_record=0.0, first_near_best=0.0)


class StepLocator:
    """Ranks a run's steps by how likely a piece of feedback is about each.

    scikit-learn style: parameters in `__init__`, `fit` on (text, steps, gold
    steps, focus) examples, learned `coef_`. Fitting is a conditional logit (a
    softmax over each run's steps), which learns what makes the right step win
    against the other steps of the same run, regularised towards `DEFAULT_WEIGHTS`
    (what it uses unfitted), so a handful of anchors cannot make it worse.
    """

    def __init__(self, embedder, alpha: float | str = "auto", random_state: int = 0):
        self.embedder = embedder
        self.alpha = alpha
        self.random_state = random_state

    def _sims(self, text: str, steps: Sequence[Step]) -> np.ndarray:
        if not steps:
            return np.zeros(0)
        vecs = self.embedder.embed([text] + [step_text(s) for s in steps])
        return vecs[1:] @ vecs[0]

    def features(self, text: str, steps: Sequence[Step], focus: str | None = None) -> np.ndarray:
        return step_features(text, steps, self._sims(text, steps), focus)

    ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0)

    def fit(self, examples: Sequence[tuple[str, Sequence[Step], Sequence[int], str | None]]) -> StepLocator:
        """examples: (feedback text, the run's steps, the steps it is about, focus actor).

        With `alpha="auto"` the regularisation is chosen by 5-fold cross-validation, repeated 3 times,
        on top-1 accuracy (with fewer than 15 examples, the strongest pull is used).
        """
        groups = []
        for text, steps, gold, focus in examples:
            gold = [g for g in gold if 0 <= g < len(steps)]
            if steps and gold:
                groups.append((self.features(text, steps, focus), gold))
        if not groups:
            raise ValueError("no example has a step inside its run")
        alpha = self.alpha
        if alpha == "auto":
            alpha = max(self.ALPHAS) if len(groups) < 15 else self._choose_alpha(groups)
        self.alpha_ = alpha
        self.coef_ = dict(zip(FEATURES, self._weights(groups, alpha), strict=True))
        self.n_examples_ = len(groups)
        return self

    def _choose_alpha(self, groups, n_folds: int = 5, repeats: int = 3) -> float:
        # Repeated k-fold: with a few dozen examples one split's choice is noise.
        rng = np.random.default_rng(self.random_state)
        n_folds = min(n_folds, len(groups))
        splits = [rng.permutation(len(groups)) % n_folds for _ in range(repeats)]
        best, best_hit = max(self.ALPHAS), -1.0
        for a in sorted(self.ALPHAS, reverse=True):  # ties go to the stronger prior
            hits = 0
            for folds in splits:
                for k in range(n_folds):
                    w = self._weights([g for g, f in zip(groups, folds, strict=True) if f != k], a)
                    hits += sum(int(np.argmax(F @ w)) in gold
                                for (F, gold), f in zip(groups, folds, strict=True) if f == k)
            if hits > best_hit:
                best, best_hit = a, hits
        return best

    def _weights(self, groups, alpha: float) -> np.ndarray:
        from scipy.optimize import minimize
        from scipy.special import logsumexp

        prior = np.array([DEFAULT_WEIGHTS.get(f, 0.0) for f in FEATURES])

        def loss(w):  # the penalty pulls towards the default weights: few examples, small moves
            diff = w - prior
            value, grad = 0.5 * alpha * diff @ diff, alpha * diff
            for F, gold in groups:  # noqa: N806
                sc = F @ w
                lse = logsumexp(sc)
                p = np.exp(sc - lse)
                value -= logsumexp(sc[gold]) - lse
                pg = np.exp(sc[gold] - logsumexp(sc[gold]))
                grad -= pg @ F[gold] - p @ F
            return value, grad

        w0 = prior + np.random.default_rng(self.random_state).normal(0, 1e-3, len(prior))
        return minimize(loss, w0, jac=True, method="L-BFGS-B").x

    def scores(self, text: str, steps: Sequence[Step], focus: str | None = None) -> np.ndarray:
        if not steps:
            return np.zeros(0)
        weights = getattr(self, "coef_", DEFAULT_WEIGHTS)
        w = np.array([weights.get(f, 0.0) for f in FEATURES])
        return self.features(text, steps, focus) @ w

    def locate(self, text: str, steps: Sequence[Step], focus: str | None = None, k: int = 1) -> list[int]:
        """The `k` likeliest steps; every explicitly referenced step is included."""
        if not steps:
            return []
        refs = explicit_steps(text, len(steps))
        order = list(np.argsort(-self.scores(text, steps, focus)))
        picked = refs + [int(i) for i in order if int(i) not in refs][: max(0, k - len(refs))]
        return sorted(picked)
