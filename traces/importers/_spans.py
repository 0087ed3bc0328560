"""OpenTelemetry spans to runs, whatever wire format carried them: one trace is one run.

Spans are grouped into traces as they stream (`TraceAssembler`), and a trace
becomes a run's steps, facts and outline (`trace_to_run`); what each span says
by the GenAI, OpenLLMetry and OpenInference conventions is read by
`traces.importers._genai`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson

from traces.importers._chat import looks_like_error
from traces.importers._genai import (
    AGENT_OPS, LLM_OPS, TOOL_OPS, call_meta, error_text, first_attr, first_of_span, input_messages, operation,
    output_messages, token_count,
)
from traces.importers._span import Span
from traces.importers.base import maybe_json, parse_time, text_of
from traces.model import Feedback, Run, Step, StepKind


def norm_id(value: Any, digits: int = 16) -> str | None:
    """Trace/span ids as lowercase hex, from ints, '0x..' strings or hex strings.

    An integer id is written as the ecosystem prints it: `digits` hex digits,
    zero-padded (32 for a trace id, 16 for a span id), so it matches the id in
    the user's tracing backend.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return format(value, f"0{digits}x")
    s = str(value).strip().lower()
    return s[2:] if s.startswith("0x") else s


# span attribute -> run metadata key, first span that has it wins (resource attributes too)
RUN_FACTS = {
    "session_id": ("session.id", "gen_ai.conversation.id", "conversation.id"),
    "conversation_id": ("gen_ai.conversation.id", "conversation.id"),
    "user_id": ("user.id", "enduser.id", "gen_ai.user.id"),
    "release": ("service.version",),
    "agent_version": ("gen_ai.agent.version", "agent.version"),
    "agent_id": ("gen_ai.agent.id",),
}
_FACT_NAMES = frozenset(n for names in RUN_FACTS.values() for n in names)
_WORKFLOW_NAMES = frozenset({"agent workflow", "workflow", "agent run", "agent"})


def _db_or_http(sp: Span) -> tuple[str, dict, bool] | None:
    """A database or HTTP client span as (tool name, arguments, failed), by the stable conventions."""
    a = sp.attributes
    system = first_attr(a, "db.system.name", "db.system")
    if system:
        args = {k: v for k, v in {"statement": first_attr(a, "db.query.text", "db.statement"),
                                  "operation": first_attr(a, "db.operation.name", "db.operation"),
                                  "collection": first_attr(a, "db.collection.name", "db.sql.table")}.items() if v}
        return f"db.{system}", args, sp.error
    method = first_attr(a, "http.request.method", "http.method")
    if method and not a.get("gen_ai.operation.name"):
        status = first_attr(a, "http.response.status_code", "http.status_code")
        args = {k: v for k, v in {"method": method, "url": first_attr(a, "url.full", "http.url", "url.path"),
                                  "status_code": status}.items() if v is not None}
        failed = sp.error or (isinstance(status, int) and status >= 400)
        return "http", args, bool(failed)
    return None


_INPUT_ROLES = frozenset({"system", "user", "developer", "human", "tool"})
_KIND_OF_ROLE = {"system": StepKind.SYSTEM, "developer": StepKind.SYSTEM, "tool": StepKind.TOOL_RESULT}


OUTLINE_MAX = 500  # wrapper spans kept per run; a trace with more keeps its first ones


def _outline(spans: list[Span], steps: list[Step]) -> list[list] | None:
    """The spans that became no step (agents, chains, workflows): the structure the steps hang from,
    as [span id, parent id, name, start, end, error], so a reader can draw the trace's tree."""
    stepped = {s.span_id for s in steps if s.span_id}
    rows = [[sp.span_id, sp.parent_id, sp.name, sp.start.isoformat() if sp.start else None,
             sp.end.isoformat() if sp.end else None, sp.error]
            for sp in spans if sp.span_id not in stepped][:OUTLINE_MAX]
    return rows or None


def trace_to_run(spans: list[Span], fmt: str, source: str, extra: dict | None = None) -> Run:
    spans = sorted(spans, key=lambda s: (s.start or datetime.min, s.end or datetime.min))
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_id or s.parent_id not in ids]
    ops = [operation(s) for s in spans]
    parents = {s.parent_id for s in spans if s.parent_id}
    has_tool_spans = not TOOL_OPS.isdisjoint(ops)
    steps: list[Step] = []
    seen_msgs: dict = {}
    pending: dict[str, list[int]] = {}  # tool name -> indices of calls awaiting a result
    agent = model = None
    total_in = total_out = 0
    for sp, op in zip(spans, ops, strict=True):
        a = sp.attributes
        if op in AGENT_OPS:
            # GenAI spans are named "invoke_agent {name}"; OpenInference's (OpenAI Agents SDK) by the
            # agent itself, under a root named "Agent workflow" that names no agent
            name = first_attr(a, "gen_ai.agent.name", "agent.name")
            if name is None:
                name = sp.name.partition(" ")[2] if a.get("gen_ai.operation.name") or \
                    sp.name.split(" ", 1)[0].lower() in AGENT_OPS else sp.name
            if name and str(name).strip().lower() not in _WORKFLOW_NAMES:
                agent = agent or str(name)
            continue
        if op in LLM_OPS:
            model = model or first_attr(a, "gen_ai.request.model", "gen_ai.response.model",
                                    "llm.model_name")
            actor = first_attr(a, "gen_ai.agent.name")
            local: dict = {}
            for m in input_messages(sp):
                role = (m.get("role") or "").lower()
                if role not in _INPUT_ROLES or (role == "tool" and has_tool_spans):
                    continue
                text = m.get("content") or ""
                if not text:
                    continue
                key = (role, text)
                # Frameworks resend the whole history on every call: a message is new
                # when this call holds it more often than all earlier calls did.
                n = local[key] = local.get(key, 0) + 1
                if n <= seen_msgs.get(key, 0):
                    continue
                seen_msgs[key] = n
                kind = _KIND_OF_ROLE.get(role, StepKind.USER)
                steps.append(Step(kind, text, None, None, None, sp.span_id, sp.parent_id, sp.start,
                                  None, None, None, kind is StepKind.TOOL_RESULT and looks_like_error(text)))
            tin = token_count(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                          "llm.token_count.prompt")
            tout = token_count(a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                           "llm.token_count.completion")
            total_in += tin or 0
            total_out += tout or 0
            first_out = len(steps)
            for m in output_messages(sp):
                parts = m.get("ordered")
                if parts is None:  # OpenInference messages carry no part order
                    parts = [("text", m.get("content"))] + [("tool_call", c) for c in m.get("tool_calls") or []]
                for kind, payload in parts:
                    if kind == "reasoning" and payload:
                        steps.append(Step(StepKind.THOUGHT, payload, actor, None, None, sp.span_id,
                                          sp.parent_id, sp.start, sp.end, tin, tout))
                    elif kind == "text" and payload:
                        steps.append(Step(StepKind.AGENT, payload, actor, None, None, sp.span_id,
                                          sp.parent_id, sp.start, sp.end, tin, tout, sp.error))
                    elif kind == "tool_call":
                        name = payload.get("name") or "tool"
                        pending.setdefault(name, []).append(len(steps))
                        steps.append(Step(StepKind.TOOL_CALL, "", actor, name,
                                          maybe_json(payload.get("arguments")),
                                          str(payload["id"]) if payload.get("id") else sp.span_id,
                                          sp.parent_id, sp.start, sp.end, tin, tout))
                    else:
                        continue
                    tin = tout = None  # the call's tokens go on its first step only
            call = call_meta(a, sp)
            if len(steps) == first_out:
                # a call with no output (it failed, or content goes elsewhere) is still a step
                err = call.get("error") if call else None
                steps.append(Step(StepKind.AGENT, err or "", actor, None, None, sp.span_id, sp.parent_id,
                                  sp.start, sp.end, tin, tout, sp.error or err is not None,
                                  {"llm_call": call or {}, "no_content": True}))
            elif call:
                first = steps[first_out]
                steps[first_out] = first.with_metadata({**(first.metadata or {}), "llm_call": call})
            continue
        if op in TOOL_OPS:
            name = first_attr(a, "gen_ai.tool.name", "tool.name") or sp.name.partition(" ")[2] or "tool"
            result = first_attr(a, "gen_ai.output", "gen_ai.tool.call.result", "output.value")
            if pending.get(name):  # the call is already a step, from the model's output
                pending[name].pop(0)
            else:
                args = maybe_json(first_attr(a, "gen_ai.tool.args", "gen_ai.tool.call.arguments",
                                         "tool.parameters", "input.value"))
                steps.append(Step(kind=StepKind.TOOL_CALL, tool_name=name, tool_args=args,
                                  span_id=sp.span_id, parent_id=sp.parent_id,
                                  started_at=sp.start))
            if result is None:
                content = (error_text(sp) if sp.error else sp.status_message) or ""
            else:  # tool output is kept verbatim; only structured values are serialised
                content = result if isinstance(result, str) else orjson.dumps(result, default=str).decode()
            call_id = a.get("gen_ai.tool.call.id")
            steps.append(Step(StepKind.TOOL_RESULT, content, None, name, None, sp.span_id, sp.parent_id,
                              sp.start, sp.end, None, None, sp.error or "error.type" in a,
                              {"call_id": call_id} if call_id else None))
            continue
        if op == "retrieve":
            out = first_attr(a, "output.value")
            if out is not None:
                steps.append(Step(kind=StepKind.OBSERVATION, content=text_of(maybe_json(out)),
                                  actor=sp.name, span_id=sp.span_id, parent_id=sp.parent_id,
                                  started_at=sp.start, ended_at=sp.end, is_error=sp.error))
            continue
        io = _db_or_http(sp)
        if io is not None:
            tool, args, failed = io
            steps.append(Step(StepKind.TOOL_CALL, error_text(sp) or "" if failed else "", None, tool, args,
                              sp.span_id, sp.parent_id, sp.start, sp.end, None, None, failed,
                              {"span_kind": tool.split(".")[0]}))
            continue
        if sp.span_id not in parents:
            # a leaf span of no known kind is still something the agent did; wrappers are structure
            out = first_attr(a, "output.value")
            err = error_text(sp) if sp.error else None
            steps.append(Step(StepKind.OBSERVATION, text_of(maybe_json(out)) if out is not None else err or "",
                              None, None, None, sp.span_id, sp.parent_id, sp.start, sp.end, None, None,
                              sp.error, {"span": sp.name}))
    root = roots[0] if roots else (spans[0] if spans else None)
    if root is not None and not any(s.kind == StepKind.USER for s in steps):
        inp = first_attr(root.attributes, "input.value", "gen_ai.input.messages")
        if inp is not None:
            steps.insert(0, Step(kind=StepKind.USER, content=text_of(maybe_json(inp)),
                                 span_id=root.span_id, started_at=root.start))
    final = (extra or {}).get("final_output")
    if root is not None and final is None:
        final = first_attr(root.attributes, "output.value")
    if final is not None:
        text = text_of(maybe_json(final)) if not isinstance(final, dict | list) else \
            orjson.dumps(final).decode()
        last_agent = next((s for s in reversed(steps) if s.kind == StepKind.AGENT), None)
        if text and (last_agent is None or last_agent.content.strip() != text.strip()):
            steps.append(Step(kind=StepKind.AGENT, content=text, actor=agent,
                              metadata={"final_output": True},
                              started_at=root.end if root else None))
    resource = root.resource if root is not None else {}
    any_error = any(s.error for s in roots)
    task = next((s.content for s in steps if s.kind == StepKind.USER), None)
    meta = {k: v for k, v in {
        "service": resource.get("service.name"),
        "framework": first_attr(root.attributes, "gen_ai.system", "gen_ai.provider.name")
        if root is not None else None,
        "tokens": {"input": total_in, "output": total_out} if (total_in or total_out) else None,
        "spans": len(spans),
        "span_outline": _outline(spans, steps),
        **_run_facts(spans, resource),
    }.items() if v is not None}
    if extra:
        meta.update({k: v for k, v in extra.items() if k != "final_output"})
    lib = _libra_export(root)
    if lib.get("format"):
        meta["imported_from"] = fmt
    return Run(
        native_id=lib.get("native_id") or (spans[0].trace_id if spans else ""),
        format=lib.get("format") or fmt, source=source, steps=tuple(steps),
        agent=agent or resource.get("service.name"), model=model,
        task=lib.get("task") or (task[:4000] if task else None),
        started_at=root.start if root else None, ended_at=root.end if root else None,
        outcome=lib.get("outcome") or ("error" if any_error else None), reward=lib.get("reward"),
        gold=lib.get("gold"), metadata=meta or None, feedback=lib.get("feedback", ()), globally_unique_id=True,
    )


def _libra_export(root: Span | None) -> dict:
    """What `libra export --as otlp` put on the root span: the run's id, labels and feedback, read back."""
    if root is None:
        return {}
    a = root.attributes
    out: dict[str, Any] = {}
    rid = a.get("libra.run_id")
    if isinstance(rid, str) and ":" in rid:
        # the run keeps the id it had, so notes and verdicts keyed by it still match
        out["format"], _, out["native_id"] = rid.partition(":")
    for key in ("outcome", "task"):
        if isinstance(a.get(f"libra.{key}"), str):
            out[key] = a[f"libra.{key}"]
    reward = a.get("libra.reward")
    if isinstance(reward, int | float) and not isinstance(reward, bool):
        out["reward"] = float(reward)
    gold = maybe_json(a.get("libra.gold"))
    if isinstance(gold, dict):
        out["gold"] = gold
    notes = []
    for ev in root.events:
        if ev.get("name") != "libra.feedback":
            continue
        at = ev.get("attributes") or {}
        if not isinstance(at.get("libra.feedback.text"), str):
            continue
        steps = maybe_json(at.get("libra.feedback.steps"))
        rating = at.get("libra.feedback.rating")
        focus = at.get("libra.feedback.focus")
        notes.append(Feedback(str(at.get("libra.feedback.author") or "unknown"), at["libra.feedback.text"],
                              tuple(int(x) for x in steps if isinstance(x, int)) if isinstance(steps, list) else (),
                              float(rating) if isinstance(rating, int | float) else None,
                              metadata={"agent": focus} if isinstance(focus, str) else None))
    if notes:
        out["feedback"] = tuple(notes)
    return out


def _run_facts(spans: list[Span], resource: dict) -> dict:
    out: dict = {}
    # most spans name no fact at all: one set test each, in C, instead of every name of every fact
    named = [sp for sp in spans if not (_FACT_NAMES.isdisjoint(sp.attributes) and _FACT_NAMES.isdisjoint(sp.resource))]
    for key, names in RUN_FACTS.items():
        for sp in named:
            v = first_of_span(sp, names)
            if v is not None:
                out[key] = str(v)
                break
        else:
            v = first_attr(resource, *names)
            if v is not None:
                out[key] = str(v)
    errors = [e for e in (error_text(sp) for sp in spans if sp.error) if e]
    if errors:
        out["errors"] = errors[:20]
    return out


_EPOCH = datetime(1970, 1, 1)


def span_time(value: Any) -> datetime | None:
    # OTLP writes epoch nanoseconds as a decimal string: the common case, done directly.
    if type(value) is str and len(value) > 17 and value.isdigit():
        return _EPOCH + timedelta(0, 0, int(value) // 1000)
    return parse_time(value)


class TraceAssembler:
    """Groups streamed spans into traces and hands back each trace once complete.

    A trace is complete when its root span has arrived and `idle` further
    records passed without a span of it, or at the end of the input. Keeps at
    most `max_open` traces in memory, so memory stays flat on endless files.
    """

    def __init__(self, fmt: str, source: str, idle: int = 5000, max_open: int = 20000):
        self.fmt, self.source, self.idle, self.max_open = fmt, source, idle, max_open
        self.open: dict[str, list[Span]] = {}
        self.last: dict[str, int] = {}
        self.rooted: set[str] = set()
        self.n = 0

    def add(self, span: Span) -> list[Run]:
        self.n += 1
        tid = span.trace_id
        self.open.setdefault(tid, []).append(span)
        self.last[tid] = self.n
        if not span.parent_id:
            self.rooted.add(tid)
        if self.n % 512 == 0 or len(self.open) > self.max_open:
            return self._sweep()
        return []

    def _sweep(self) -> list[Run]:
        done = [t for t in self.rooted if self.n - self.last[t] >= self.idle]
        if len(self.open) - len(done) > self.max_open:
            oldest = sorted((t for t in self.open if t not in done), key=self.last.__getitem__)
            done += oldest[: len(self.open) - len(done) - self.max_open]
        return [self._close(t) for t in done]

    def _close(self, tid: str) -> Run:
        spans = self.open.pop(tid)
        self.last.pop(tid, None)
        self.rooted.discard(tid)
        return trace_to_run(spans, self.fmt, self.source)

    def finish(self) -> list[Run]:
        return [self._close(t) for t in list(self.open)]
