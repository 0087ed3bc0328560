"""OTLP JSON, as the OpenTelemetry Collector's file exporter writes it.

Each line is an `ExportTraceServiceRequest`: `{"resourceSpans": [{"resource":
{...}, "scopeSpans": [{"scope": {...}, "spans": [...]}]}]}`, with attributes
as `[{"key", "value": {"stringValue" | "intValue" | ...}}]`. A trace's spans
may be spread over many lines; traces are assembled as the file streams and
emitted once complete. The record unit is the span.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

from traces.importers import register
from traces.importers._span import Span
from traces.importers._spans import TraceAssembler, span_time
from traces.importers.base import Importer, Record, RecordError, Sample, Source, in_shard, raw_text
from traces.importers.records import iter_records
from traces.model import Parsed, Rejected

_HEX = re.compile(r"[0-9a-fA-F]+")
STATUS_ERROR = {2, "2", "STATUS_CODE_ERROR", "ERROR"}


def any_value(v: Any) -> Any:
    """Decode an OTLP AnyValue."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return v["intValue"]
    if "doubleValue" in v:
        return v["doubleValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "arrayValue" in v:
        return [any_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return attributes((v["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def attributes(kvs: Any) -> dict[str, Any]:
    if isinstance(kvs, dict):  # some writers use a plain map
        return kvs
    out = {}
    try:  # well-formed attributes, the rule: indexing fails on anything else
        for kv in kvs:
            key, v = kv["key"], kv["value"]
            if type(key) is str:  # most values are strings: skip the general decoder for them
                out[key] = v["stringValue"] if "stringValue" in v else any_value(v)
        return out
    except (KeyError, TypeError):
        pass
    out = {}
    for kv in kvs or ():
        if type(kv) is dict:
            key = kv.get("key")
            if type(key) is str:
                v = kv.get("value")
                out[key] = v["stringValue"] if type(v) is dict and "stringValue" in v else any_value(v)
    return out


def otlp_id(value: Any, field: str, size: int) -> str | None:
    """OTLP/JSON ids are hex; protobuf-JSON writers sometimes emit base64 instead."""
    if type(value) is str and len(value) == 2 * size and _HEX.fullmatch(value):
        return value.lower()
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise RecordError(f"'{field}' should be a hex string", field)
    s = value.strip().lower()
    if len(s) == size * 2 and _HEX.fullmatch(s):
        return s
    try:
        raw = base64.b64decode(value, validate=True)
        if len(raw) == size:
            return raw.hex()
    except (binascii.Error, ValueError):
        pass
    raise RecordError(f"'{field}' is not a {size}-byte id: {value[:60]!r}", field)


def parse_otlp_span(sp: Any, where: str, resource: dict, scope: dict) -> Span:
    if type(sp) is not dict:
        raise RecordError(f"'{where}' is not a span object", where)
    get = sp.get
    tid, sid, pid = get("traceId"), get("spanId"), get("parentSpanId")
    # ids written as plain hex are the rule; anything else takes the careful path
    tid = tid.lower() if type(tid) is str and len(tid) == 32 and _HEX.fullmatch(tid) else \
        otlp_id(tid, f"{where}.traceId", 16)
    sid = sid.lower() if type(sid) is str and len(sid) == 16 and _HEX.fullmatch(sid) else \
        otlp_id(sid, f"{where}.spanId", 8)
    if pid:
        pid = pid.lower() if type(pid) is str and len(pid) == 16 and _HEX.fullmatch(pid) else \
            otlp_id(pid, f"{where}.parentSpanId", 8)
    else:
        pid = None
    if not tid:
        raise RecordError(f"span '{where}' has no traceId", f"{where}.traceId")
    if not sid:
        raise RecordError(f"span '{where}' has no spanId", f"{where}.spanId")
    name = get("name")
    if not isinstance(name, str):
        raise RecordError(f"span '{where}' has no name", f"{where}.name")
    status = get("status") or {}
    raw_events = get("events")
    events = [
        {"name": e.get("name", ""), "attributes": attributes(e.get("attributes"))}
        for e in raw_events if isinstance(e, dict)
    ] if raw_events else []
    error = isinstance(status, dict) and status.get("code") in STATUS_ERROR
    error = error or any(e["name"] == "exception" for e in events)
    attrs = attributes(get("attributes"))
    scope_name = scope.get("name")
    if scope_name:
        attrs.setdefault("otel.scope.name", scope_name)
    return Span(tid, sid, pid, name, span_time(get("startTimeUnixNano")),
                span_time(get("endTimeUnixNano")), error,
                status.get("message") if isinstance(status, dict) else None,
                attrs, events, resource)


class OtlpJsonImporter(Importer):
    name = "otlp-json"
    description = "OTLP JSON trace exports (OpenTelemetry Collector file exporter)"
    expects = 'an object with "resourceSpans" (OTLP JSON)'
    priority = 6
    shardable = True  # by trace id: a trace spread over many lines stays in one process

    def sniff(self, sample: Sample) -> bool:
        return isinstance(sample.first, dict) and "resourceSpans" in sample.first

    def parse(self, source: Source, shard: tuple[int, int] | None = None) -> Iterator[Parsed | Rejected]:
        # A shard sees 1/n of the spans, so a trace goes idle after 1/n as many.
        asm = TraceAssembler(self.name, source.name, idle=5000 // (shard[1] if shard else 1))
        whole = [False]  # whether the line just read belongs to one trace, so to one shard
        skip = None
        if shard is not None:
            def skip(line: bytes) -> bool:
                key = line_trace(line)
                whole[0] = key is not None
                return key is not None and not in_shard(key, shard)
        for rec in iter_records(source, skip=skip):
            # A line of one trace is wholly its shard's, bad records included; other lines
            # are split span by span, their unkeyable records going to shard 0.
            mine = whole[0]
            if isinstance(rec, Rejected):
                if mine or in_shard(None, shard):
                    yield rec
                continue
            yield from self._request(rec, asm, None if mine else shard)
        runs = asm.finish()
        if runs:
            yield Parsed(tuple(runs), records=0)

    def _request(self, rec: Record, asm: TraceAssembler,
                 shard: tuple[int, int] | None) -> Iterator[Parsed | Rejected]:
        d = rec.value
        rs_list = d.get("resourceSpans") if isinstance(d, dict) else None
        if not isinstance(rs_list, list):
            if in_shard(None, shard):
                yield Rejected(reason="missing 'resourceSpans' list", raw=raw_text(rec.raw),
                               line=rec.line, offset=rec.offset, field="resourceSpans")
            return
        good, done = 0, []
        for i, rs in enumerate(rs_list):
            res = attributes((rs.get("resource") or {}).get("attributes")) if isinstance(rs, dict) else {}
            for j, ss in enumerate(rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []
                                   if isinstance(rs, dict) else []):
                scope = (ss.get("scope") or ss.get("instrumentationLibrary") or {}) if isinstance(ss, dict) else {}
                for k, sp in enumerate(ss.get("spans") or [] if isinstance(ss, dict) else []):
                    if shard is not None and not in_shard(_trace_key(sp), shard):
                        continue
                    where = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                    try:
                        span = parse_otlp_span(sp, where, res, scope)
                    except RecordError as exc:
                        yield Rejected(reason=str(exc), raw=_raw(sp), line=rec.line,
                                       offset=rec.offset, field=exc.field)
                        continue
                    good += 1
                    done.extend(asm.add(span))
        yield Parsed(tuple(done), records=good, line=rec.line)


_TRACE_KEY = b'"traceId":"'
_HEX32 = re.compile(rb"[0-9a-fA-F]{32}")
_ESCAPED_LETTER = re.compile(rb"\\u00[4-7]")


def line_trace(line: bytes) -> str | None:
    """The one trace every span of a line belongs to, read off its bytes (None: not sure).

    Lets a shard skip other shards' lines without parsing them. Sure only when
    every "traceId" key in the line is written plainly with the same hex id: a
    key spelled with escapes, or an id written any other way, means "parse it".
    Runs on every line of a big file, so it only uses bytes.find and count.
    """
    at = line.find(_TRACE_KEY)
    if at < 0:
        return None
    start = at + len(_TRACE_KEY)
    tid = line[start:start + 33]
    if tid[32:] != b'"' or not _HEX32.fullmatch(tid, 0, 32):
        return None
    # every other traceId key must hold the same id, written the same way
    if line.count(b'"traceId"') != line.count(_TRACE_KEY + tid):
        return None
    if _ESCAPED_LETTER.search(line):  # a regex here: bytes.find is slow on such short needles
        return None
    return tid[:32].decode().lower()


def _trace_key(sp: Any) -> str | None:
    try:
        return otlp_id(sp.get("traceId"), "traceId", 16) if isinstance(sp, dict) else None
    except RecordError:
        return None


def _raw(v: Any) -> str:
    import orjson

    try:
        return raw_text(orjson.dumps(v, default=str))
    except TypeError:
        return repr(v)[:100000]


register(OtlpJsonImporter())
