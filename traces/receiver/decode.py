"""OTLP/HTTP request bodies: protobuf or JSON, gzip or not, into OTLP JSON dicts.

The protocol types are opentelemetry-proto's own; protobuf messages become
the OTLP JSON shape with `MessageToDict` (ids then come as base64, which the
OTLP importer reads as well as hex).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import orjson

KINDS = ("traces", "logs")
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class BadRequest(ValueError):
    """The body cannot be read; the client should not retry it (HTTP 400/413/415)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    kind: str  # "traces" or "logs"
    body: dict[str, Any]  # the ExportTraceServiceRequest / ExportLogsServiceRequest as OTLP JSON
    items: int  # spans or log records in it


def inflate(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """The body without its Content-Encoding, refused past `limit` bytes (a gzip bomb is a few KB)."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return raw
    if enc not in ("gzip", "deflate"):
        raise BadRequest(f"Content-Encoding {encoding!r} is not supported (gzip, deflate or none)", 415)
    d = zlib.decompressobj(wbits=31 if enc == "gzip" else 15)
    try:
        out = d.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the {enc} body cannot be decompressed: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise BadRequest(f"the decompressed body is over {limit} bytes", 413)
    return out


def _message(kind: str):
    if kind == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
        return ExportTraceServiceRequest()
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    return ExportLogsServiceRequest()


def response(kind: str, content_type: str, rejected: int = 0, message: str = "") -> bytes:
    """The Export*ServiceResponse, with partial_success when some items were refused."""
    from google.protobuf.json_format import MessageToDict

    if kind == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
        r = ExportTraceServiceResponse()
        if rejected:
            r.partial_success.rejected_spans = rejected
            r.partial_success.error_message = message
    else:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
        r = ExportLogsServiceResponse()
        if rejected:
            r.partial_success.rejected_log_records = rejected
            r.partial_success.error_message = message
    return r.SerializeToString() if content_type == PROTOBUF else orjson.dumps(MessageToDict(r))


def media_type(content_type: str | None) -> str:
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct not in (PROTOBUF, JSON):
        raise BadRequest(f"Content-Type {content_type!r} is not OTLP ({PROTOBUF} or {JSON})", 415)
    return ct


def decode(kind: str, content_type: str, body: bytes) -> Request:
    """Parse one request body; BadRequest says what is wrong with it."""
    if kind not in KINDS:
        raise BadRequest(f"unknown signal {kind!r}", 404)
    if content_type == PROTOBUF:
        from google.protobuf.json_format import MessageToDict
        from google.protobuf.message import DecodeError

        msg = _message(kind)
        try:
            msg.ParseFromString(body)
        except DecodeError as exc:
            raise BadRequest(f"the body is not an OTLP {kind} protobuf message: {exc}") from None
        d = MessageToDict(msg)
    else:
        try:
            d = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from None
        if not isinstance(d, dict):
            raise BadRequest("the body is not an OTLP JSON object")
    return Request(kind, d, count(kind, d))


def count(kind: str, d: dict[str, Any]) -> int:
    outer, inner, leaf = ("resourceSpans", "scopeSpans", "spans") if kind == "traces" else \
        ("resourceLogs", "scopeLogs", "logRecords")
    n = 0
    for r in d.get(outer) or ():
        for s in (r.get(inner) or ()) if isinstance(r, dict) else ():
            n += len(s.get(leaf) or ()) if isinstance(s, dict) else 0
    return n
