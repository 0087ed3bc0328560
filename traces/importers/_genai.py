"""What one span says, by the conventions producers write: its operation, messages, tokens and errors.

The GenAI semantic conventions (`gen_ai.*`, old and new message attributes),
OpenLLMetry's flattened `gen_ai.prompt.N.*`, and OpenInference
(`openinference.span.kind`, `llm.input_messages.N.message.*`, `tool.*`,
`input.value`/`output.value`). Assembling a trace's spans into a run is
`traces.importers._spans`.
"""

from __future__ import annotations

import re
from typing import Any

from traces.importers._span import Span
from traces.importers.base import maybe_json, text_of

LLM_OPS = {"chat", "call_llm", "text_completion", "generate_content", "completion", "llm"}
TOOL_OPS = {"execute_tool", "tool"}
AGENT_OPS = {"invoke_agent", "create_agent", "agent"}
OI_KIND = {"LLM": "chat", "TOOL": "execute_tool", "AGENT": "invoke_agent",
           "CHAIN": "chain", "RETRIEVER": "retrieve", "EMBEDDING": "embeddings",
           "RERANKER": "rerank", "GUARDRAIL": "guardrail", "EVALUATOR": "evaluate"}


def operation(span: Span) -> str:
    a = span.attributes
    op = a.get("gen_ai.operation.name")
    if isinstance(op, str) and op:
        return op.lower()
    kind = a.get("openinference.span.kind")
    if isinstance(kind, str) and kind.upper() in OI_KIND:
        return OI_KIND[kind.upper()]
    head = span.name.split(" ", 1)[0].lower()
    if head in LLM_OPS | TOOL_OPS | AGENT_OPS:
        return head
    if "llm.model_name" in a or "gen_ai.request.model" in a:
        return "chat"
    return head


_INDEXED = re.compile(r"^(?P<prefix>.+?)\.(?P<i>\d+)\.(?P<rest>.+)$")


def _unflatten(attrs: dict, prefix: str) -> list[dict]:
    """`prefix.0.message.role` style attributes to a list of dicts."""
    out: dict[int, dict] = {}
    plen = len(prefix) + 1
    for k, v in attrs.items():
        if not k.startswith(prefix + "."):
            continue
        rest = k[plen:]
        idx, _, tail = rest.partition(".")
        if not idx.isdigit() or not tail:
            continue
        node = out.setdefault(int(idx), {})
        parts = tail.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return [out[i] for i in sorted(out)]


def _listify(node: Any) -> list:
    """Nested dicts keyed '0','1',... (from unflattening) back to lists."""
    if isinstance(node, dict) and node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node if isinstance(node, list) else []


def _msg_from_oi(m: dict) -> dict:
    msg = m.get("message", m)
    calls = []
    for tc in _listify(msg.get("tool_calls")):
        tc = tc.get("tool_call", tc)
        fn = tc.get("function", {})
        calls.append({"name": fn.get("name"), "arguments": fn.get("arguments"), "id": tc.get("id")})
    return {"role": msg.get("role"), "content": msg.get("content"), "tool_calls": calls}


def _normalise_messages(raw: Any) -> list[dict]:
    """Messages as [{role, content, tool_calls[{name, arguments, id}], reasoning}]."""
    raw = maybe_json(raw)
    if isinstance(raw, dict):
        raw = raw.get("messages", [raw])
    if not isinstance(raw, list):
        return [{"role": "assistant", "content": text_of(raw)}] if raw else []
    out = []
    for m in raw:
        if not isinstance(m, dict):
            continue
        if "tool.name" in m:  # any-agent output: [{"tool.name", "tool.args"}]
            call = {"name": m["tool.name"], "arguments": m.get("tool.args")}
            out.append({"role": "assistant", "content": "", "tool_calls": [call],
                        "ordered": [("tool_call", call)]})
            continue
        role = m.get("role", "assistant")
        calls, texts, reasoning, ordered = [], [], [], []
        parts = m.get("parts")
        if isinstance(parts, list):  # GenAI semconv >= 1.36
            for p in parts:
                if not isinstance(p, dict):
                    continue
                t = p.get("type")
                if t == "text":
                    text = p.get("content")
                    text = text if type(text) is str else text_of(text)
                    texts.append(text)
                    ordered.append(("text", text))
                elif t == "tool_call":
                    calls.append({"name": p.get("name"), "arguments": p.get("arguments"),
                                  "id": p.get("id")})
                    ordered.append(("tool_call", calls[-1]))
                elif t == "tool_call_response":
                    texts.append(text_of(p.get("response", p.get("result"))))
                    role = "tool"
                elif t in ("reasoning", "thinking"):  # pydantic-ai and Anthropic say "thinking"
                    reasoning.append(text_of(p.get("content") or p.get("thinking")))
                    ordered.append(("reasoning", reasoning[-1]))
            content = texts[0] if len(texts) == 1 else "\n".join(filter(None, texts))
        else:
            content = text_of(m.get("content"))
            if m.get("reasoning"):
                reasoning.append(text_of(m["reasoning"]))
                ordered.append(("reasoning", reasoning[-1]))
            if content:
                ordered.append(("text", content))
            for tc in m.get("tool_calls") or []:
                if isinstance(tc, dict):
                    fn = tc.get("function") if isinstance(tc.get("function"), dict) else tc
                    calls.append({"name": fn.get("name"), "arguments": fn.get("arguments"),
                                  "id": tc.get("id")})
                    ordered.append(("tool_call", calls[-1]))
        out.append({"role": role, "content": content, "tool_calls": calls,
                    "reasoning": "\n".join(reasoning), "ordered": ordered})
    return out


def _indexed_messages(a: dict, openinference: str, openllmetry: str) -> list[dict] | None:
    """Messages flattened into numbered attributes, OpenInference's first; None when there are none."""
    oi = _unflatten(a, openinference)
    if oi:
        return [_msg_from_oi(m) for m in oi]
    flat = _unflatten(a, openllmetry)
    return _normalise_messages(flat) if flat else None


def input_messages(span: Span) -> list[dict]:
    a = span.attributes
    for key in ("gen_ai.input.messages", "gen_ai.prompt", "llm.input_messages", "input.value"):
        if key in a and key != "llm.input_messages":
            msgs = _normalise_messages(a[key])
            if key == "input.value" and not (msgs and msgs[0].get("role") != "assistant"):
                msgs = [{"role": "user", "content": text_of(maybe_json(a[key]))}]
            if key == "gen_ai.input.messages" and a.get("gen_ai.system_instructions"):
                msgs = [{"role": "system",
                         "content": text_of(maybe_json(a["gen_ai.system_instructions"]))}] + msgs
            return msgs
    indexed = _indexed_messages(a, "llm.input_messages", "gen_ai.prompt")
    if indexed is not None:
        return indexed
    msgs = []
    for ev in span.events:  # GenAI semconv events (older releases)
        name = ev.get("name", "")
        if name in ("gen_ai.system.message", "gen_ai.user.message", "gen_ai.tool.message"):
            role = name.split(".")[1]
            body = ev.get("attributes", {})
            msgs.append({"role": role, "content": text_of(maybe_json(body.get("content")))})
    return msgs


def output_messages(span: Span) -> list[dict]:
    a = span.attributes
    for key in ("gen_ai.output.messages", "gen_ai.output", "gen_ai.completion"):
        if key in a:
            return _normalise_messages(a[key])
    indexed = _indexed_messages(a, "llm.output_messages", "gen_ai.completion")
    if indexed is not None:
        return indexed
    if "output.value" in a:
        return _normalise_messages(a["output.value"])
    msgs = []
    for ev in span.events:
        if ev.get("name") == "gen_ai.choice":
            body = ev.get("attributes", {})
            msg = maybe_json(body.get("message", body))
            msgs.extend(_normalise_messages([msg] if isinstance(msg, dict) else msg))
    return msgs


def first_attr(a: dict, *keys: str) -> Any:
    for k in keys:
        v = a.get(k)
        if v is not None and v != "":
            return v
    return None


def first_of_span(sp: Span, keys: tuple[str, ...]) -> Any:
    """`first_attr` of the span's resource and attributes together, attributes winning, without merging the
    two: merging each span's dicts for every run fact was a fifth of turning traces into runs (cProfile)."""
    a, r = sp.attributes, sp.resource
    for k in keys:
        v = a[k] if k in a else r.get(k)
        if v is not None and v != "":
            return v
    return None


def token_count(a: dict, *keys: str) -> int | None:
    v = a.get(keys[0])
    if type(v) is int and 0 <= v < 2**63:  # the usual case: an OTLP intValue
        return v
    v = first_attr(a, *keys)
    try:
        n = int(v) if v is not None else None
    except (TypeError, ValueError):
        return None
    return n if n is None or 0 <= n < 2**63 else None  # a count, and one the store can hold


def error_text(sp: Span) -> str | None:
    """What went wrong in a span: its exception event's message, else its status message or error type."""
    for ev in sp.events:
        if ev.get("name") == "exception":
            at = ev.get("attributes") or {}
            kind, msg = at.get("exception.type"), at.get("exception.message")
            if kind or msg:
                return ": ".join(str(x) for x in (kind, msg) if x)
    kind, msg = sp.attributes.get("error.type"), sp.status_message
    if kind and msg and str(kind) not in msg:
        return f"{kind}: {msg}"
    return msg or (str(kind) if kind else None)


def call_meta(a: dict, sp: Span) -> dict | None:
    """An LLM call's own facts, kept on its first step: response id, finish reasons, models, error."""
    reasons = first_attr(a, "gen_ai.response.finish_reasons", "llm.finish_reason", "gen_ai.response.finish_reason")
    meta = {k: v for k, v in {
        "response_id": first_attr(a, "gen_ai.response.id", "llm.response.id"),
        "finish_reasons": list(reasons) if isinstance(reasons, list | tuple) else [reasons] if reasons else None,
        "request_model": a.get("gen_ai.request.model"),
        "response_model": a.get("gen_ai.response.model"),
        "provider": first_attr(a, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"),
        "error": error_text(sp) if sp.error or "error.type" in a else None,
    }.items() if v is not None}
    return meta or None
