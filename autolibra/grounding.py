"""Grounding: free-text feedback into aspects tied to the steps they talk about.

Two backends behind one function each (`ground`):

- `OfflineGrounder`: splits feedback into bullets and detects each bullet's
  sign (`autolibra.signs`), keeps steps the annotator anchored, and otherwise
  ranks the run's steps with a `StepLocator` (`autolibra.locator`).
- `LLMGrounder`: one call per feedback, the run rendered with step numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from autolibra.aspects import Aspect, aspect_id
from traces.model import Feedback
from autolibra.locator import StepLocator
from autolibra.sign_model import SignClassifier, fit_for, scored_sign
from autolibra.signs import detect_sign, split_bullets, topic_text
from metrics.judges.base import step_text
from metrics.llm.client import LLM, Request
from metrics.llm.prompts import DATA_NOTICE, data_block, render_steps
from traces.model import Run

@dataclass(frozen=True)
class GroundingResult:
    aspects: tuple[Aspect, ...]
    error: str | None = None


class OfflineGrounder:
    backend = "offline"

    def __init__(self, locator: StepLocator, k: int = 1, by_format: Callable[[str], StepLocator] | None = None,
                 version: int | None = None):
        self.locator = locator
        self.k = k
        # a fitted locator's weights for each trace format (autolibra.locators); its version names
        # the backend, so aspects grounded with other weights are not taken from the cache
        self.by_format = by_format
        if version is not None:
            self.backend = f"offline+locator-v{version}"
        # fitted in ground_many on the signed remarks among the notes (autolibra/sign_model.py)
        self.signs: SignClassifier | None = None

    def ground_many(self, items: Sequence[tuple[Feedback, Run]],
                    progress: Callable[[int, int], None] | None = None) -> list[GroundingResult]:
        # One embedding pass over every bullet and step first; the per-item work then hits the cache.
        texts = [b for fb, _ in items if not fb.steps for b in split_bullets(fb.text)]
        texts += [step_text(s) for fb, run in items if not fb.steps for s in run.steps]
        if texts:
            self.locator.embedder.embed(list(dict.fromkeys(texts)))
        self.signs = fit_for([fb for fb, _ in items])
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
                loc = self.by_format(run.format) if self.by_format is not None else self.locator
                steps, given = tuple(loc.locate(bullet, run.steps, fb.focus, self.k)), False
            meta = {"topic": topic_text(bullet, names)}
            for b in (fb.metadata or {}).get("bullets") or []:  # gold labels some datasets carry, for evaluation only
                if isinstance(b, dict) and isinstance(b.get("text"), str) and bullet[:60] in b["text"]:
                    meta["label"] = {k: v for k, v in b.items() if k != "text"}
                    break
            out.append(Aspect(aspect_id(fb.feedback_id, i, self.backend), fb.feedback_id, fb.run_id, i, bullet,
                              bullet, self._sign(fb, bullet), steps, given, fb.focus, meta))
        return GroundingResult(tuple(out))

    def _sign(self, fb: Feedback, bullet: str) -> int:
        """People's own sign where their score gives one; else the classifier's; else the lexicon's."""
        known = scored_sign(fb, bullet)
        if known is not None:
            return known
        if self.signs is not None:
            return int(self.signs.predict([bullet])[0])
        return detect_sign(bullet)


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
        parts = ["The run, one step per line as a JSON object:\n" + data_block("run", render_steps(run.steps))]
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
