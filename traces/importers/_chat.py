"""Chat messages (OpenAI, ShareGPT, Inspect and kin) to steps.

Shared by the importers whose runs are lists of role-tagged messages.
"""

from __future__ import annotations

import re
from typing import Any

from traces.importers.base import RecordError, maybe_json, text_of
from traces.model import Step, StepKind

ROLE_KIND = {
    "system": StepKind.SYSTEM, "developer": StepKind.SYSTEM,
    "user": StepKind.USER, "human": StepKind.USER,
    "assistant": StepKind.AGENT, "gpt": StepKind.AGENT, "ai": StepKind.AGENT,
    "model": StepKind.AGENT, "bot": StepKind.AGENT, "agent": StepKind.AGENT,
    "tool": StepKind.TOOL_RESULT, "function": StepKind.TOOL_RESULT,
    "ipython": StepKind.TOOL_RESULT,
    "observation": StepKind.OBSERVATION, "environment": StepKind.OBSERVATION,
}

_REACT = re.compile(
    r"^\s*(?:thought|think)\s*:\s*(?P<thought>.*?)\s*(?:\n\s*action\s*:\s*(?P<action>.*?))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_ACTION = re.compile(r"^\s*action\s*:\s*(?P<action>.*?)\s*$", re.IGNORECASE | re.DOTALL)
_VERB = re.compile(r"^\s*([A-Za-z_][\w\-]*)")
_ERROR_PREFIX = ("error", "traceback", "exception")


def looks_like_error(text: str) -> bool:
    head = text.lstrip()[:40].lower()
    return head.startswith(_ERROR_PREFIX)


def action_name(action: str) -> str:
    m = _VERB.match(action)
    return m.group(1) if m else "action"


def split_react(text: str) -> tuple[str | None, str | None]:
    """(thought, action) when an agent writes ReAct-style 'Thought: ... Action: ...'."""
    m = _REACT.match(text)
    if m:
        return m.group("thought") or None, m.group("action") or None
    m = _ACTION.match(text)
    if m:
        return None, m.group("action")
    return None, None


def tool_call_steps(calls: Any, path: str, actor: str | None) -> list[Step]:
    if not isinstance(calls, list):
        raise RecordError(f"'{path}' should be a list of tool calls", path)
    out = []
    for j, call in enumerate(calls):
        where = f"{path}[{j}]"
        if not isinstance(call, dict):
            raise RecordError(f"tool call at '{where}' is not an object", where)
        fn = call.get("function")
        if isinstance(fn, dict):  # OpenAI: {"function": {"name", "arguments": "<json>"}}
            name, args = fn.get("name"), fn.get("arguments")
        elif fn is not None:  # Inspect: {"function": "name", "arguments": {...}}
            name, args = fn, call.get("arguments", call.get("args"))
        else:  # plain {id, name, arguments}, and Anthropic's {type: tool_use, id, name, input}
            name, args = call.get("name"), call.get("arguments", call.get("args", call.get("input")))
        if not isinstance(name, str) or not name:
            raise RecordError(f"tool call at '{where}' has no function name (function.name or name)", f"{where}.function")
        out.append(Step(
            kind=StepKind.TOOL_CALL, content="", actor=actor, tool_name=name,
            tool_args=maybe_json(args), span_id=str(call["id"]) if call.get("id") else None,
        ))
    return out


def _anthropic_blocks(content: Any) -> list[dict] | None:
    """The content blocks when they hold tool_use or tool_result blocks (else None: plain content)."""
    if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result")
                                         for b in content):
        return [b for b in content if isinstance(b, dict)]
    return None


def _block_steps(blocks: list[dict], kind: StepKind, actor: Any, call_names: dict, where: str) -> list[Step]:
    out: list[Step] = []
    actor = actor if isinstance(actor, str) else None
    for j, b in enumerate(blocks):
        t = b.get("type")
        if t == "text" and text_of(b.get("text")).strip():
            out.append(Step(kind=kind, content=text_of(b.get("text")), actor=actor))
        elif t in ("thinking", "reasoning") and (b.get("thinking") or b.get("text")):
            out.append(Step(kind=StepKind.THOUGHT, content=text_of(b.get("thinking") or b.get("text")), actor=actor))
        elif t == "tool_use":
            st, = tool_call_steps([b], f"{where}[{j}]", actor)
            if st.span_id:
                call_names[st.span_id] = st.tool_name or ""
            out.append(st)
        elif t == "tool_result":
            call_id = b.get("tool_use_id")
            content = text_of(b.get("content"))
            out.append(Step(kind=StepKind.TOOL_RESULT, content=content,
                            tool_name=call_names.get(str(call_id)) or None,
                            parent_id=str(call_id) if call_id else None,
                            is_error=bool(b.get("is_error")) or looks_like_error(content)))
    return out


def messages_to_steps(messages: Any, path: str = "messages", react: bool = True,
                      starts: list[int] | None = None) -> list[Step]:
    """Steps for a list of chat messages; raises RecordError naming the bad field.

    `starts`, when given, receives the index of each message's first step (so a
    caller can attach what it knows per message: times, tokens)."""
    if not isinstance(messages, list):
        raise RecordError(f"'{path}' should be a list of messages", path)
    steps: list[Step] = []
    call_names: dict[str, str] = {}
    for i, m in enumerate(messages):
        where = f"{path}[{i}]"
        if starts is not None:
            starts.append(len(steps))
        if not isinstance(m, dict):
            raise RecordError(f"message at '{where}' is not an object", where)
        role = m.get("role", m.get("from"))
        if not isinstance(role, str):
            raise RecordError(f"message at '{where}' has no role", f"{where}.role")
        kind = ROLE_KIND.get(role.lower())
        if kind is None:
            raise RecordError(f"unknown role {role!r} at '{where}.role'", f"{where}.role")
        raw_content = m.get("content", m.get("value", m.get("text")))
        blocks = _anthropic_blocks(raw_content)
        if blocks is not None:  # Anthropic Messages: tool_use / tool_result blocks inside content
            steps.extend(_block_steps(blocks, kind, m.get("name"), call_names, f"{where}.content"))
            continue
        content = text_of(raw_content)
        actor = m.get("name") if kind is not StepKind.TOOL_RESULT else None
        meta = {"role": role} if role.lower() not in ("user", "assistant", "system", "tool") else None
        if kind is StepKind.AGENT:
            if isinstance(raw_content, list):
                for part in raw_content:
                    if isinstance(part, dict) and part.get("type") in ("reasoning", "thinking"):
                        thought = text_of(part.get("reasoning") or part.get("thinking"))
                        if thought:
                            steps.append(Step(kind=StepKind.THOUGHT, content=thought, actor=actor))
                content = "\n".join(
                    text_of([p]) for p in raw_content
                    if not (isinstance(p, dict) and p.get("type") in ("reasoning", "thinking"))
                )
            if isinstance(m.get("reasoning"), str) and m["reasoning"]:
                steps.append(Step(kind=StepKind.THOUGHT, content=m["reasoning"], actor=actor))
            thought, action = split_react(content) if react and content else (None, None)
            if thought:
                steps.append(Step(kind=StepKind.THOUGHT, content=thought, actor=actor, metadata=meta))
            if action:
                steps.append(Step(
                    kind=StepKind.TOOL_CALL, content=action, actor=actor,
                    tool_name=action_name(action), tool_args={"action": action}, metadata=meta,
                ))
            elif not thought and content.strip():
                steps.append(Step(kind=kind, content=content, actor=actor, metadata=meta))
            calls = m.get("tool_calls")
            if calls:
                for st in tool_call_steps(calls, f"{where}.tool_calls", actor):
                    if st.span_id:
                        call_names[st.span_id] = st.tool_name or ""
                    steps.append(st)
            fc = m.get("function_call")
            if isinstance(fc, dict) and fc.get("name"):
                steps.append(Step(
                    kind=StepKind.TOOL_CALL, actor=actor, tool_name=fc["name"],
                    tool_args=maybe_json(fc.get("arguments")),
                ))
        elif kind is StepKind.TOOL_RESULT:
            call_id = m.get("tool_call_id")
            name = m.get("name") or m.get("function") or call_names.get(str(call_id)) or None
            err = m.get("error")
            is_error = bool(err) or looks_like_error(content)
            if isinstance(err, dict) and err.get("message") and not content:
                content = str(err["message"])
            steps.append(Step(
                kind=kind, content=content, tool_name=name if isinstance(name, str) else None,
                parent_id=str(call_id) if call_id else None, is_error=is_error, metadata=meta,
            ))
        else:
            steps.append(Step(kind=kind, content=content, actor=actor, metadata=meta))
    return steps


def first_user_text(steps: list[Step], limit: int = 4000) -> str | None:
    for s in steps:
        if s.kind == StepKind.USER and s.content.strip():
            return s.content[:limit]
    return None


def system_text(steps: list[Step]) -> str | None:
    parts = [s.content for s in steps if s.kind == StepKind.SYSTEM and s.content]
    return "\n\n".join(parts) or None
