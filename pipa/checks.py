"""What can honestly be computed from a trace without a judge.

Each check returns the unit verdicts of one criterion: (step index, +1/-1,
reason). An empty list means the run has no unit the check can decide, which
is not the same as passing it.
"""

from __future__ import annotations

import re

from traces.model import Run, Step, StepKind

Unit = tuple[int, int, str]


def tool_calls_with_results(steps: tuple[Step, ...]) -> list[tuple[int, int | None]]:
    """Each tool call's index and its result's index (None when the trace has none).

    Results are matched in order to the earliest open call of the same tool
    (or any open call when the result names no tool), which is how chat and
    span formats interleave them.
    """
    open_calls: list[int] = []
    pairs: dict[int, int | None] = {}
    for i, s in enumerate(steps):
        if s.kind == StepKind.TOOL_CALL:
            open_calls.append(i)
            pairs[i] = None
        elif s.kind == StepKind.TOOL_RESULT and open_calls:
            match = next((c for c in open_calls if s.tool_name and steps[c].tool_name == s.tool_name), None)
            if match is None:
                match = open_calls[0]
            open_calls.remove(match)
            pairs[match] = i
    return sorted(pairs.items())


ERROR_PREFIX = re.compile(r"^\s*(error|exception|traceback|failed|failure)\b[:\s]", re.IGNORECASE)


def result_failed(s: Step) -> bool:
    return bool(s.is_error) or bool(ERROR_PREFIX.match(s.content or ""))


def tool_efficiency(run: Run) -> list[Unit]:
    units = []
    for call, res in tool_calls_with_results(run.steps):
        if res is None:
            continue  # the trace does not say how the call went
        name = run.steps[call].tool_name or "tool"
        if result_failed(run.steps[res]):
            units.append((call, -1, f"{name} returned an error: {(run.steps[res].content or '')[:160]}"))
        else:
            units.append((call, 1, f"{name} succeeded"))
    return units


SUCCESS = {"success", "succeeded", "passed", "pass", "resolved", "accepted", "completed", "done", "true"}
FAILURE = {"failure", "failed", "fail", "error", "unresolved", "rejected", "incomplete", "false", "timeout"}


def recorded_outcome(run: Run) -> bool | None:
    """The task's own success check, when the trace records one."""
    if run.reward is not None:
        # rewards in [0, 1] (tau-bench, SWE-bench) count as done only when full
        return run.reward >= 1.0 - 1e-9 if 0.0 <= run.reward <= 1.0 else run.reward > 0
    if run.outcome:
        o = run.outcome.strip().lower()
        if o in SUCCESS:
            return True
        if o in FAILURE:
            return False
    return None


def task_completion(run: Run) -> list[Unit]:
    ok = recorded_outcome(run)
    if ok is None:
        return []
    last = max(len(run.steps) - 1, 0)
    what = f"reward {run.reward:g}" if run.reward is not None else f"outcome {run.outcome!r}"
    return [(last, 1 if ok else -1, f"recorded {what}")]


# Identifiers: tokens mixing letters and digits (reservation codes, flight
# numbers, order ids), at least 5 characters. A reply stating one that no
# earlier user message, system prompt or tool result contains has made it up;
# plain numbers are left alone because agents legitimately compute totals.
IDENTIFIER = re.compile(r"(?<![\w-])(?=\w*\d)(?=\w*[A-Za-z])\w{5,}(?![\w-])")
SOURCES = {StepKind.SYSTEM, StepKind.USER, StepKind.TOOL_RESULT, StepKind.OBSERVATION}


def identifiers(text: str) -> set[str]:
    return {m.group(0).lower() for m in IDENTIFIER.finditer(text or "")}


def unsupported_identifiers(run: Run) -> list[Unit]:
    """Replies that state identifiers, and whether every one was established before."""
    seen: set[str] = set()
    context: list[str] = []
    units = []
    for i, s in enumerate(run.steps):
        if s.kind == StepKind.AGENT:
            ids = identifiers(s.content)
            if ids:
                blob = "\n".join(context).lower()
                new = sorted(x for x in ids if x not in seen and x not in blob)
                if new:
                    units.append((i, -1, "states identifiers nothing earlier contains: " + ", ".join(new[:6])))
                else:
                    units.append((i, 1, f"all {len(ids)} identifiers it states appeared earlier"))
        elif s.kind in SOURCES:
            context.append(s.content or "")
            seen |= identifiers(s.content)
    return units
