"""OpenTelemetry spans as SDK exporters and agent frameworks dump them to JSON.

Shapes accepted: `{"spans": [...], "final_output": ...}` (any-agent and other
frameworks' trace dumps), a JSON array of spans, one span per line, the Python
SDK's ConsoleSpanExporter output (pretty-printed spans one after another), and
flat spans with ids and times at the top level (`trace_id`, `span_id`,
`parent_span_id`, `start_time`, ...), as trace tools export them. Ids may be integers, `0x` hex or
hex; times ISO text or epoch nanoseconds. Spans are grouped by trace id;
each trace becomes one run. The record unit is the span.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from traces.importers import register
from traces.importers._span import Span
from traces.importers._spans import TraceAssembler, norm_id, span_time, trace_to_run
from traces.importers.base import Importer, Record, RecordError, Sample, Source, reject
from traces.importers.records import iter_records
from traces.model import Parsed, Rejected


_FLAT_TRACE = ("trace_id", "traceId", "context.trace_id")
_FLAT_SPAN = ("span_id", "spanId", "context.span_id")
_FLAT_PARENT = ("parent_span_id", "parentSpanId", "parent_id", "parentId")
_FLAT_START = ("start_time", "startTime", "start_time_unix_nano", "startTimeUnixNano", "timestamp")
_FLAT_END = ("end_time", "endTime", "end_time_unix_nano", "endTimeUnixNano")


def _get(d: dict, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in d and d[k] not in (None, ""):
            return d[k]
    return None


def _looks_like_span(d: Any) -> bool:
    if not isinstance(d, dict) or "name" not in d:
        return False
    if "context" in d:
        return "attributes" in d or "start_time" in d
    # a flat span per line, ids and times at the top level, as trace tools export spans
    return _get(d, _FLAT_TRACE) is not None and _get(d, _FLAT_SPAN) is not None and \
        _get(d, _FLAT_START) is not None


def parse_span(d: Any, where: str) -> Span:
    if not isinstance(d, dict):
        raise RecordError(f"'{where}' is not a span object", where)
    ctx = d.get("context")
    if not isinstance(ctx, dict):
        if _get(d, _FLAT_TRACE) is None:
            raise RecordError(f"span '{where}' has no context or trace_id", f"{where}.context")
        ctx = {"trace_id": _get(d, _FLAT_TRACE), "span_id": _get(d, _FLAT_SPAN)}
    tid, sid = norm_id(ctx.get("trace_id"), 32), norm_id(ctx.get("span_id"))
    if not tid:
        raise RecordError(f"span '{where}' has no trace id", f"{where}.context.trace_id")
    if not sid:
        raise RecordError(f"span '{where}' has no span id", f"{where}.context.span_id")
    parent = d.get("parent")
    pid = norm_id(parent.get("span_id")) if isinstance(parent, dict) else norm_id(_get(d, _FLAT_PARENT))
    attrs = d.get("attributes") or d.get("span_attributes") or {}
    if not isinstance(attrs, dict):
        raise RecordError(f"span '{where}' attributes should be an object", f"{where}.attributes")
    status = d.get("status") or {"status_code": d.get("status_code", ""),
                                  "description": d.get("status_message")}
    code = str(status.get("status_code", "")).lower() if isinstance(status, dict) else ""
    events = []
    for ev in d.get("events") or []:
        if isinstance(ev, dict):
            events.append({"name": ev.get("name", ""), "attributes": ev.get("attributes") or {}})
            if ev.get("name") == "exception":
                code = "error"
    res = d.get("resource") or ({"attributes": d["resource_attributes"]}
                                if isinstance(d.get("resource_attributes"), dict) else {})
    name = d.get("name")
    if not isinstance(name, str):
        raise RecordError(f"span '{where}' has no name", f"{where}.name")
    return Span(
        trace_id=tid, span_id=sid, parent_id=pid, name=name,
        start=span_time(_get(d, _FLAT_START)), end=span_time(_get(d, _FLAT_END)),
        error=code.endswith("error"),
        status_message=status.get("description") if isinstance(status, dict) else None,
        attributes=attrs, events=events,
        resource=res.get("attributes", {}) if isinstance(res, dict) else {},
    )


class OtelSpansImporter(Importer):
    name = "otel-spans"
    description = "OpenTelemetry spans dumped as JSON by SDK exporters and agent frameworks"
    expects = 'spans with "name" and "context" (or trace_id, span_id and start_time at the top level), or {"spans": [...]}'
    priority = 5

    def sniff(self, sample: Sample) -> bool:
        d = sample.first
        if isinstance(d, dict) and isinstance(d.get("spans"), list):
            return not d["spans"] or _looks_like_span(d["spans"][0])
        return _looks_like_span(d)

    def parse(self, source: Source) -> Iterator[Parsed | Rejected]:
        asm = TraceAssembler(self.name, source.name)
        for rec in iter_records(source):
            if isinstance(rec, Rejected):
                yield rec
                continue
            d = rec.value
            if isinstance(d, dict) and isinstance(d.get("spans"), list):
                yield from self._document(rec, source)
                continue
            try:
                span = parse_span(d, "span")
            except Exception as exc:  # noqa: BLE001 - any failure quarantines the record
                yield reject(rec, exc)
                continue
            yield Parsed(tuple(asm.add(span)), records=1, line=rec.line)
        runs = asm.finish()
        if runs:
            yield Parsed(tuple(runs), records=0)

    def _document(self, rec: Record, source: Source) -> Iterator[Parsed | Rejected]:
        d = rec.value
        extra = {k: v for k, v in d.items() if k != "spans"}
        by_trace: dict[str, list[Span]] = {}
        good = 0
        for i, raw in enumerate(d["spans"]):
            try:
                span = parse_span(raw, f"spans[{i}]")
            except Exception as exc:  # noqa: BLE001 - any failure quarantines the record
                yield reject(Record(raw, rec.line, rec.offset, _dump(raw)), exc)
                continue
            by_trace.setdefault(span.trace_id, []).append(span)
            good += 1
        runs = tuple(trace_to_run(spans, self.name, source.name, extra) for spans in by_trace.values())
        yield Parsed(runs, records=good, line=rec.line)


def _dump(v: Any) -> str:
    import orjson

    try:
        return orjson.dumps(v, default=str).decode()
    except TypeError:
        return repr(v)


register(OtelSpansImporter())
