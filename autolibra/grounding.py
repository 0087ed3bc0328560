"""Grounding: free-text feedback into aspects tied to the steps they talk about.

Two backends behind one function each (`ground`):

- `OfflineGrounder`: splits feedback into bullets, detects each bullet's sign
  (a polarity lexicon with negation scope, so "no rules were broken" is
  praise), keeps steps the annotator anchored, and otherwise ranks the run's
  steps with a `StepLocator`: explicit references ("step 4", "[4]"), quoted
  text, named actors and tools, word overlap and embedding similarity. The
  locator has sensible default weights and can be fitted on feedback people
  anchored to steps, which the app collects.
- `LLMGrounder`: one call per feedback, the run rendered with step numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from autolibra.aspects import Aspect, Feedback, aspect_id
from metrics.judge import step_text
from metrics.llm import LLM, Request
from metrics.prompts import DATA_NOTICE, data_block, render_steps
from traces.model import Run, Step

# -- bullets and sign ------------------------------------------------------------

_BULLET = re.compile(r"^\s*(?:[-*•·]|\d+[.)])\s+")
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def split_bullets(text: str) -> list[str]:
    """Feedback into statements: bullet lines, else sentences; fragments without content dropped."""
    lines = [ln.strip() for ln in text.replace("\r", "").split("\n") if ln.strip()]
    out: list[str] = []
    for ln in lines:
        ln = _BULLET.sub("", ln).strip()
        out.extend(s.strip() for s in _SENT.split(ln) if s.strip())
    keep = [s for s in out if len(re.findall(r"[A-Za-z]{2,}", s)) >= 2]
    return keep or ([text.strip()] if text.strip() else [])


NEGATORS = {"no", "not", "never", "none", "nothing", "without", "neither", "nor", "didn't", "didnt", "doesn't",
            "don't", "wasn't", "weren't", "isn't", "aren't", "hasn't", "haven't", "cannot", "can't", "couldn't",
            "won't", "lack", "lacked", "lacking", "n't", "nobody"}
NEGATIVE = {
    "fail", "failed", "fails", "failure", "wrong", "incorrect", "incorrectly", "error", "errors", "mistake",
    "mistakes", "ignored", "ignore", "ignores", "ignoring", "broke", "broken", "break", "breaks", "leaked",
    "leak", "revealed", "reveal", "too", "unnecessary", "redundant", "loop", "looped", "looping", "stuck",
    "hallucinated", "hallucination", "invented", "confusing", "confused", "rambles", "rambling", "robotic",
    "unnatural", "rude", "lost", "lose", "missing", "omitted", "poor", "poorly", "bad", "badly", "guessed",
    "assumed", "repeated", "repetitive", "repeating", "risky", "wasted", "unclear", "irrelevant", "disrupts",
    "disrupt", "worse", "lower", "lowers", "weird", "awkward", "odd", "strange", "unrealistic", "forced",
    "aggressive", "pushy", "wordy", "buries", "off", "violated", "violates", "harm", "harmed", "loss", "lied",
    "lying", "dishonest", "refused", "abrupt", "abruptly", "inconsistent", "contradict", "contradicted",
    "unhelpful", "hostile", "manipulative", "slow", "late", "unable", "difficult", "annoying", "generic",
    "fabricated", "anyway", "nowhere", "jargon", "long",
}
POSITIVE = {
    "good", "great", "nice", "well", "clear", "clearly", "concise", "natural", "naturally", "believable",
    "respected", "respectful", "correct", "correctly", "helpful", "polite", "achieved", "achieve", "succeeded",
    "success", "successful", "successfully", "recovered", "efficient", "gained", "gain", "learned", "learnt",
    "improved", "friendly", "kind", "appropriate", "appropriately", "reasonable", "realistic", "accurate",
    "handled", "managed", "maintained", "compromise", "agreed", "fair", "honest", "gracefully", "excellent",
    "strong", "better", "smooth", "empathetic", "understanding", "positive", "convincing", "thoughtful",
    "effective", "effectively", "careful", "carefully", "confirmed", "checked", "asked", "backed",
    "respectfully", "benefit", "benefited", "benefitted", "won", "got", "gets", "obtained", "secured",
    "fixed", "fixes", "worked", "works", "resolved", "solved", "attention", "quickly", "clean", "direct",
}
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


_SCOPE_BREAK = {"and", "but", "so", "then", "which", "while", "because", "although", "though", "however", "yet"}
_NEG_PHRASES = ("made up", "out of nowhere", "went past", "went over", "gave up", "too many", "too much",
                "too long", "not enough", "at odds", "over the top", "fell short", "falls short")
_POS_PHRASES = ("paid attention", "instead of guessing", "instead of assuming", "instead of repeating",
                "stayed within", "kept within", "on point", "on track", "to the point")


def _tokens(text: str) -> list[str]:
    """Words, with "|" where punctuation ends a negation's reach."""
    return re.findall(r"[a-z]+(?:'[a-z]+)?|[.,;:!?()]", text.lower().replace("n't", " n't"))


def detect_sign(text: str) -> int:
    """+1 for praise, -1 for criticism.

    Polarity words count +1/-1; a negator up to four words before flips one,
    unless punctuation or a conjunction comes between ("had no date and asked"
    keeps "asked" positive). "Should have ..." and "instead of ..." mark
    criticism, except "instead of guessing" and kin. With no polarity word, a
    negated statement ("no relationship change") reads as criticism and a
    plain statement of what happened as praise.
    """
    low = text.lower()
    words = _tokens(text)
    score = 0.0
    for i, w in enumerate(words):
        pol = 1 if w in POSITIVE else -1 if w in NEGATIVE else 0
        if not pol:
            continue
        window = []
        for x in reversed(words[max(0, i - 4):i]):
            if x in _SCOPE_BREAK or not x.isalpha() and x != "n't":
                break
            window.append(x)
        if any(x in NEGATORS for x in window):
            pol = -pol
        score += pol
    score -= 2 * sum(p in low for p in _NEG_PHRASES)
    score += 2 * sum(p in low for p in _POS_PHRASES)
    if re.search(r"\bshould(?:n't| not)? (?:have|be|not|never|ask|let|refer|recognize|recognise|check)\b", low) \
            or low.startswith("should") or ("instead of" in low and not any(p in low for p in _POS_PHRASES)):
        score -= 2
    if score == 0:
        return -1 if any(w in NEGATORS for w in words) else 1
    return 1 if score > 0 else -1


_EVALUATIVE = {"good", "great", "nice", "well", "very", "really", "quite", "bad", "poor", "poorly", "pretty",
               "super", "extremely", "so", "too", "just", "overall"}


def topic_text(text: str, names: Sequence[str] = ()) -> str:
    """The aspect's subject with its verdict taken out, for clustering by what is judged.

    People's reasons are often formulaic negations ("no secrets were revealed",
    "no rules broken"); embedding them as written groups them by wording.
    Dropping negators and evaluative words, and replacing the actors' names,
    leaves what the statement is about.
    """
    t = text
    for n in sorted({p for name in names if name for p in [name, *name.split()] if len(p) > 2}, key=len,
                    reverse=True):
        t = re.sub(rf"\b{re.escape(n)}('s)?\b", "the agent", t, flags=re.IGNORECASE)
    t = re.sub(r"\b[a-z]+(?:_[a-z0-9]+)+\b", "the tool", t)  # identifiers are slot fillers, not behaviour
    t = re.sub(r"[$€£]?\d[\d,.]*%?", "N", t)
    words = re.findall(r"[A-Za-z][A-Za-z'’-]*|\d+|[^\sA-Za-z\d]", t)
    kept = [w for w in words if w.lower().replace("’", "'") not in NEGATORS | _EVALUATIVE]
    out = " ".join(kept)
    out = re.sub(r"\s+([.,;:!?])", r"\1", out).strip(" .,;:")
    return out or text


# -- locating steps ------------------------------------------------------------------

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
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOP}


def _actor_key(actor: str | None) -> str | None:
    if not actor:
        return None
    return re.sub(r"[^a-z]", "", actor.lower()) or None


FEATURES = ("sim", "sim_z", "sim_best", "explicit", "quote", "actor", "tool", "overlap", "focus", "position",
            "actor_first", "actor_order", "actor_sim_rank", "neighbour_sim", "entities",
            *[f"kind_{k}" for k in KINDS])
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
        ])
    return np.asarray(rows, dtype=np.float64).reshape(n, len(FEATURES))


# Weights used before any fitting: similarity and explicit signals dominate; the
# scene-setting steps (system prompt, the user's request) are rarely what feedback is about.
DEFAULT_WEIGHTS = dict(sim=4.0, sim_z=1.0, sim_best=0.5, explicit=6.0, quote=3.0, actor=1.5, tool=1.5,
                       overlap=2.0, focus=2.0, position=0.0, actor_first=0.5, actor_order=0.5,
                       actor_sim_rank=1.0, neighbour_sim=0.5, entities=1.5,
                       kind_user_message=-1.5, kind_system=-3.0,
                       kind_agent_message=0.3, kind_thought=0.0, kind_tool_call=0.3, kind_tool_result=0.0,
                       kind_observation=0.0)


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


# -- backends ------------------------------------------------------------------------

@dataclass(frozen=True)
class GroundingResult:
    aspects: tuple[Aspect, ...]
    error: str | None = None


class OfflineGrounder:
    backend = "offline"

    def __init__(self, locator: StepLocator, k: int = 1):
        self.locator = locator
        self.k = k

    def ground_many(self, items: Sequence[tuple[Feedback, Run]],
                    progress: Callable[[int, int], None] | None = None) -> list[GroundingResult]:
        # One embedding pass over every bullet and step first; the per-item work then hits the cache.
        texts = [b for fb, _ in items if not fb.steps for b in split_bullets(fb.text)]
        texts += [step_text(s) for fb, run in items if not fb.steps for s in run.steps]
        if texts:
            self.locator.embedder.embed(list(dict.fromkeys(texts)))
        out = []
        for i, (fb, run) in enumerate(items, 1):
            out.append(self.ground(fb, run))
            if progress:
                progress(i, len(items))
        return out

    def ground(self, fb: Feedback, run: Run) -> GroundingResult:
        names = _names(run)
        out = []
        for i, bullet in enumerate(split_bullets(fb.text)):
            if fb.steps:
                steps, given = tuple(fb.steps), True
            else:
                steps, given = tuple(self.locator.locate(bullet, run.steps, fb.focus, self.k)), False
            meta = {"topic": topic_text(bullet, names)}
            for b in fb.metadata.get("bullets") or []:  # gold labels some datasets carry, for evaluation only
                if isinstance(b, dict) and isinstance(b.get("text"), str) and bullet[:60] in b["text"]:
                    meta["label"] = {k: v for k, v in b.items() if k != "text"}
                    break
            out.append(Aspect(aspect_id(fb.feedback_id, i, self.backend), fb.feedback_id, fb.run_id, i, bullet,
                              bullet, detect_sign(bullet), steps, given, fb.focus, meta))
        return GroundingResult(tuple(out))


class _AspectOut(BaseModel):
    bullet: str = Field(description="the feedback sentence this comes from, verbatim")
    behaviour: str = Field(description="the agent behaviour it describes, stated generically in one sentence")
    sign: int = Field(description="+1 if the feedback praises the behaviour, -1 if it criticises it")
    steps: list[int] = Field(default_factory=list, description="numbers of the steps it refers to")


class _GroundingOut(BaseModel):
    aspects: list[_AspectOut]


GROUND_INSTRUCTIONS = """You turn a person's feedback on an agent run into aspects.

An aspect is one behaviour of the agent the feedback praises or criticises. For each:
- quote the feedback sentence it comes from,
- state the behaviour in one generic sentence ("asked the user to confirm before booking"),
- give its sign: +1 praised, -1 criticised,
- list the numbers of the run steps it refers to (use the steps the annotator marked when given).
Split feedback that praises or criticises several things into several aspects.

{notice}"""


class LLMGrounder:
    backend = "llm"

    def __init__(self, llm: LLM):
        self.llm = llm

    def request(self, fb: Feedback, run: Run) -> Request:
        parts = ["The run, one numbered step per line:\n" + data_block("run", render_steps(run.steps))]
        if fb.focus:
            parts.append(f"The feedback is about {fb.focus!r}.")
        if fb.steps:
            parts.append(f"The annotator marked steps {list(fb.steps)}.")
        parts.append("The feedback:\n" + data_block("feedback", fb.text))
        return Request(purpose="ground", tool_name="record_aspects",
                       tool_description="Record the aspects of this feedback.", schema=_GroundingOut,
                       system=GROUND_INSTRUCTIONS.format(notice=DATA_NOTICE), user="\n\n".join(parts))

    def ground_many(self, items: Sequence[tuple[Feedback, Run]],
                    progress: Callable[[int, int], None] | None = None) -> list[GroundingResult]:
        res = self.llm.map([(fb.feedback_id, self.request(fb, run)) for fb, run in items], progress)
        out = []
        for fb, run in items:
            r = res[fb.feedback_id]
            if not r.ok:
                out.append(GroundingResult((), r.error))
                continue
            aspects = []
            for i, a in enumerate(r.value.aspects):
                steps = tuple(fb.steps) if fb.steps else tuple(s for s in a.steps if 0 <= s < len(run.steps))
                aspects.append(Aspect(aspect_id(fb.feedback_id, i, self.backend), fb.feedback_id, fb.run_id, i,
                                      a.bullet, a.behaviour, 1 if a.sign > 0 else -1, steps, bool(fb.steps),
                                      fb.focus, {"topic": a.behaviour}))
            out.append(GroundingResult(tuple(aspects)))
        return out


def _names(run: Run) -> list[str]:
    names = {s.actor for s in run.steps if s.actor}
    agents = (run.metadata or {}).get("agents")
    if isinstance(agents, list):
        names.update(a for a in agents if isinstance(a, str))
    return sorted(names)


def ground(items: Sequence[tuple[Feedback, Run]], grounder,
           progress: Callable[[int, int], None] | None = None) -> tuple[list[Aspect], list[tuple[str, str]]]:
    """Aspects for every (feedback, run); failures come back as (feedback id, reason)."""
    if hasattr(grounder, "ground_many"):
        results = grounder.ground_many(items, progress)
    else:
        results = []
        for i, (fb, run) in enumerate(items, 1):
            results.append(grounder.ground(fb, run))
            if progress:
                progress(i, len(items))
    aspects, failed = [], []
    for (fb, _), r in zip(items, results, strict=True):
        if r.error:
            failed.append((fb.feedback_id, r.error))
        aspects.extend(r.aspects)
    return aspects, failed
