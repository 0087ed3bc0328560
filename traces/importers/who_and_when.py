"""Who&When failure-attribution logs (Magentic-One multi-agent histories).

`{question, ground_truth, history: [{role, name?, content}], mistake_agent,
mistake_step, mistake_reason}`. Step i is history[i], so `mistake_step`
(a string index into history) is a step index. Roles like
"Orchestrator (thought)" and "Orchestrator (-> WebSurfer)" name the actor
and, for the latter, who is addressed. The Algorithm-Generated logs say who
spoke in `name` instead ({"role": "user", "name": "Computer_terminal"}): the
name is the actor, a terminal's turn is a tool result, and only a turn with
no name (or named human) is a person's. The human-written mistake reason is
kept as a gold label and imported as unanchored feedback.
"""

from __future__ import annotations

import re

from traces.importers import register
from traces.importers.base import Record, RecordError, Sample, Source, as_int, text_of
from traces.importers.records import RecordImporter
from traces.model import Feedback, Run, Step, StepKind

_ROLE = re.compile(r"^\s*(?P<actor>[^()]+?)\s*(?:\((?P<note>[^)]*)\))?\s*$")


_TERMINAL = re.compile(r"computer[_ ]?terminal|terminal|executor", re.I)


def _terminal(actor: str, content: str) -> Step:
    return Step(kind=StepKind.TOOL_RESULT, content=content, actor=actor, tool_name="terminal",
                is_error="error" in content[:200].lower() or "traceback" in content[:400].lower())


def role_to_step(role: str, content: str, name: str | None = None) -> Step:
    if name and name.strip().lower() not in ("human", "user"):
        actor = name.strip()
        if _TERMINAL.fullmatch(actor):
            return _terminal(actor, content)
        return Step(kind=StepKind.AGENT, content=content, actor=actor, metadata={"role": role})
    if role.lower() in ("human", "user") or name:  # no name, or named human: a person's turn
        return Step(kind=StepKind.USER, content=content, actor="human")
    m = _ROLE.match(role)
    actor = m.group("actor").strip() if m else role
    note = (m.group("note") or "").strip() if m else ""
    if note == "thought":
        return Step(kind=StepKind.THOUGHT, content=content, actor=actor)
    if note.startswith("->"):
        return Step(kind=StepKind.AGENT, content=content, actor=actor,
                    metadata={"to": note[2:].strip()})
    if note:
        return Step(kind=StepKind.AGENT, content=content, actor=actor, metadata={"note": note})
    if actor == "ComputerTerminal":
        return _terminal(actor, content)
    return Step(kind=StepKind.AGENT, content=content, actor=actor)


class WhoAndWhenImporter(RecordImporter):
    name = "who-and-when"
    description = "Who&When multi-agent failure attribution logs"
    expects = 'an object with a "history" list and "mistake_step"'
    priority = 8

    def sniff(self, sample: Sample) -> bool:
        d = sample.first
        return isinstance(d, dict) and isinstance(d.get("history"), list) and "mistake_step" in d

    def run_of(self, rec: Record, source: Source) -> Run:
        d = rec.value
        if not isinstance(d, dict):
            raise RecordError("record is not a JSON object")
        hist = d.get("history")
        if not isinstance(hist, list):
            raise RecordError("field 'history' should be a list", "history")
        steps = []
        for i, m in enumerate(hist):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise RecordError(f"'history[{i}]' needs a role", f"history[{i}].role")
            name = m.get("name")
            steps.append(role_to_step(m["role"], text_of(m.get("content")), name if isinstance(name, str) else None))
        step = as_int(d.get("mistake_step"))
        if d.get("mistake_step") is not None and step is None:
            raise RecordError("field 'mistake_step' should be a step index", "mistake_step")
        if step is not None and not 0 <= step < len(steps):
            raise RecordError(
                f"field 'mistake_step' is {step} but history has {len(steps)} entries", "mistake_step"
            )
        gold = {k: d[k] for k in ("mistake_agent", "mistake_reason", "ground_truth", "is_corrected",
                                  "level", "mistake_type", "labels") if d.get(k) is not None}
        if step is not None:
            gold["mistake_step"] = step
        reason = d.get("mistake_reason")
        feedback = ()
        if isinstance(reason, str) and reason.strip():
            # the step the annotators named stays out of the note's anchors (grounding is measured on
            # finding it) but is kept, so the note is shown about that step
            feedback = (Feedback(author="who-and-when-annotator", text=reason.strip(),
                                 metadata={"dataset": "who-and-when",
                                           **({"source_step": step} if step is not None else {})}),)
        question = text_of(d.get("question")) or next((s.content for s in steps if s.kind == StepKind.USER), "")
        return Run(
            native_id=str(d.get("question_ID") or source.name), format=self.name,
            source=source.name, steps=tuple(steps), agent="magentic-one",
            task=question[:4000] or None, outcome="failure" if step is not None else None,
            reward=0.0 if step is not None else None, gold=gold or None, feedback=feedback,
        )


register(WhoAndWhenImporter())
