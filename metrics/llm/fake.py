"""A local fake of the Anthropic Messages API, for tests and benchmarks.

Real HTTP on 127.0.0.1; point the `anthropic` SDK at it with `base_url`. It
serves `POST /v1/messages` and the Message Batches endpoints, counts tokens
(about four characters a token), accounts prompt caching the way the API
does (the prefix up to a `cache_control` breakpoint is written once, then
read), keeps a ledger of every billed response, and injects faults on
demand: 429/500/529 with `retry-after`, slow responses, malformed JSON,
dropped connections, and tool output that breaks the schema.

Responses come from a `responder(request) -> tool input dict | text`,
scripted per test; the default one fills a forced tool's schema with
plausible values.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from metrics.llm.tokens import count_tokens

MIN_CACHEABLE = 1024  # tokens; shorter prefixes are not cached, as on the real API


def _blocks(request: dict) -> list[tuple[Any, bool]]:
    """The prompt as (block, has_cache_breakpoint) in the API's order: tools, system, messages."""
    out: list[tuple[Any, bool]] = []
    for t in request.get("tools") or []:
        out.append((t, bool(t.get("cache_control"))))
    system = request.get("system")
    if isinstance(system, str):
        out.append((system, False))
    for b in system or [] if isinstance(system, list) else []:
        out.append((b, bool(isinstance(b, dict) and b.get("cache_control"))))
    for m in request.get("messages") or []:
        content = m.get("content")
        if isinstance(content, str):
            out.append((content, False))
        else:
            for b in content or []:
                out.append((b, bool(isinstance(b, dict) and b.get("cache_control"))))
    return out


def schema_example(schema: dict, defs: dict | None = None) -> Any:
    """A value that satisfies a JSON schema (enough for the schemas Libra uses)."""
    defs = defs or schema.get("$defs", {})
    if "$ref" in schema:
        return schema_example(defs[schema["$ref"].split("/")[-1]], defs)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return schema_example(options[0], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    t = schema.get("type")
    if t == "object":
        return {k: schema_example(v, defs) for k, v in schema.get("properties", {}).items()
                if k in schema.get("required", schema.get("properties", {}))}
    if t == "array":
        n = max(1, schema.get("minItems", 1))
        return [schema_example(schema.get("items", {}), defs) for _ in range(n)]
    if t == "integer":
        return max(schema.get("minimum", 0), 0) if "minimum" in schema else 0
    if t == "number":
        return 0.5
    if t == "boolean":
        return True
    return "example"


def default_responder(request: dict) -> Any:
    choice = request.get("tool_choice") or {}
    if choice.get("type") == "tool":
        tool = next(t for t in request["tools"] if t["name"] == choice["name"])
        return schema_example(tool["input_schema"])
    return "ok"


@dataclass
class Fault:
    kind: str  # "429" | "500" | "529" | "slow" | "malformed" | "disconnect" | "invalid_tool"
    delay: float = 0.0
    retry_after: float | None = None


@dataclass
class Billed:
    request_id: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    batch: bool
    key: str  # hash of the request, to spot the same request billed twice


@dataclass
class FakeAnthropic:
    responder: Callable[[dict], Any] = default_responder
    batch_delay: float = 0.0  # seconds a batch stays "in_progress"
    requests: list[dict] = field(default_factory=list)
    ledger: list[Billed] = field(default_factory=list)
    faults: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: set[str] = set()
        self._batches: dict[str, dict] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control --------------------------------------------------------------

    def start(self) -> FakeAnthropic:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep test output clean
                pass

            def do_POST(self):
                fake._handle(self, "POST")

            def do_GET(self):
                fake._handle(self, "GET")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def inject(self, kind: str, times: int = 1, delay: float = 0.0, retry_after: float | None = None) -> None:
        with self._lock:
            for _ in range(times):
                self.faults.append(Fault(kind, delay, retry_after))

    def billed_tokens(self) -> dict[str, int]:
        with self._lock:
            return {
                "calls": len(self.ledger),
                "input_tokens": sum(b.input_tokens for b in self.ledger),
                "output_tokens": sum(b.output_tokens for b in self.ledger),
                "cache_creation_input_tokens": sum(b.cache_creation_input_tokens for b in self.ledger),
                "cache_read_input_tokens": sum(b.cache_read_input_tokens for b in self.ledger),
            }

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.ledger.clear()
            self.faults.clear()
            self._cache.clear()

    # -- HTTP -----------------------------------------------------------------

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict | None = None,
              raw: bytes | None = None, content_type: str = "application/json") -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        h.send_response(status)
        h.send_header("content-type", content_type)
        h.send_header("content-length", str(len(data)))
        h.send_header("request-id", f"req_{uuid.uuid4().hex[:12]}")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _error(self, h, status: int, kind: str, message: str, headers: dict | None = None) -> None:
        self._send(h, status, {"type": "error", "error": {"type": kind, "message": message}}, headers)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("content-length") or 0)
        body = json.loads(h.rfile.read(length) or b"{}") if method == "POST" else {}
        path = h.path.split("?")[0]
        try:
            self._route(h, method, path, body)
        except Exception as exc:  # noqa: BLE001 - a broken responder is a server error, not a hang
            self._error(h, 500, "api_error", f"fake server error: {type(exc).__name__}: {exc}")

    def _route(self, h: BaseHTTPRequestHandler, method: str, path: str, body: dict) -> None:
        if method == "POST" and path == "/v1/messages":
            fault = None
            with self._lock:
                self.requests.append(body)
                if self.faults:
                    fault = self.faults.popleft()
            if fault and self._apply(h, fault):
                return
            invalid = bool(fault and fault.kind == "invalid_tool")
            self._send(h, 200, self._message(body, batch=False, invalid=invalid))
        elif method == "POST" and path == "/v1/messages/batches":
            self._create_batch(h, body)
        elif method == "GET" and path.startswith("/v1/messages/batches/"):
            rest = path[len("/v1/messages/batches/"):]
            if rest.endswith("/results"):
                self._batch_results(h, rest[: -len("/results")])
            else:
                self._batch_status(h, rest)
        else:
            self._error(h, 404, "not_found_error", f"no route for {method} {path}")

    def _apply(self, h, fault: Fault) -> bool:
        """True when the fault replaced the response."""
        if fault.kind == "slow":
            time.sleep(fault.delay)
            return False
        if fault.kind in ("429", "500", "529"):
            status = int(fault.kind)
            kind = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}[status]
            headers = {}
            if fault.retry_after is not None:
                headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
                headers["retry-after"] = str(max(1, math.ceil(fault.retry_after)))
            self._error(h, status, kind, f"injected {status}", headers)
            return True
        if fault.kind == "malformed":
            self._send(h, 200, None, raw=b'{"id": "msg_broken", "content": [{"type": "tool_use", ')
            return True
        if fault.kind == "disconnect":
            h.close_connection = True
            h.connection.shutdown(2)
            return True
        return False

    # -- messages ---------------------------------------------------------------

    def _usage(self, request: dict) -> tuple[int, int, int]:
        blocks = _blocks(request)
        last_bp = max((i for i, (_, bp) in enumerate(blocks) if bp), default=-1)
        total = sum(count_tokens(b) for b, _ in blocks)
        if last_bp < 0:
            return total, 0, 0
        prefix = blocks[: last_bp + 1]
        prefix_tokens = sum(count_tokens(b) for b, _ in prefix)
        if prefix_tokens < MIN_CACHEABLE:
            return total, 0, 0
        key = hashlib.sha256((request.get("model", "") + json.dumps(
            [b for b, _ in prefix], sort_keys=True, default=str)).encode()).hexdigest()
        with self._lock:
            hit = key in self._cache
            self._cache.add(key)
        rest = total - prefix_tokens
        return (rest, 0, prefix_tokens) if hit else (rest, prefix_tokens, 0)

    def _message(self, request: dict, batch: bool, invalid: bool = False) -> dict:
        answer = self.responder(request)
        choice = request.get("tool_choice") or {}
        if choice.get("type") == "tool":
            if invalid:
                answer = {"unexpected": "shape"}
            content = [{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:16]}",
                        "name": choice["name"], "input": answer}]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": answer if isinstance(answer, str) else json.dumps(answer)}]
            stop = "end_turn"
        inp, created, read = self._usage(request)
        out = count_tokens(content)
        rid = f"msg_{uuid.uuid4().hex[:20]}"
        key = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
        with self._lock:
            self.ledger.append(Billed(rid, request.get("model", ""), inp, out, created, read, batch, key))
        return {
            "id": rid, "type": "message", "role": "assistant", "model": request.get("model"),
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": inp, "output_tokens": out,
                      "cache_creation_input_tokens": created, "cache_read_input_tokens": read},
        }

    # -- batches ----------------------------------------------------------------

    def _batch_obj(self, b: dict) -> dict:
        ended = time.monotonic() - b["created"] >= self.batch_delay
        n = len(b["requests"])
        return {
            "id": b["id"], "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {"processing": 0 if ended else n, "succeeded": n if ended else 0,
                               "errored": 0, "canceled": 0, "expired": 0},
            "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-02T00:00:00Z",
            "ended_at": "2026-01-01T00:01:00Z" if ended else None,
            "archived_at": None, "cancel_initiated_at": None,
            "results_url": f"{self.base_url}/v1/messages/batches/{b['id']}/results" if ended else None,
        }

    def _create_batch(self, h, body: dict) -> None:
        reqs = body.get("requests") or []
        bid = f"msgbatch_{uuid.uuid4().hex[:16]}"
        with self._lock:
            self._batches[bid] = {"id": bid, "requests": reqs, "created": time.monotonic(), "results": None}
        self._send(h, 200, self._batch_obj(self._batches[bid]))

    def _batch_status(self, h, bid: str) -> None:
        b = self._batches.get(bid)
        if b is None:
            self._error(h, 404, "not_found_error", f"no batch {bid}")
            return
        self._send(h, 200, self._batch_obj(b))

    def _batch_results(self, h, bid: str) -> None:
        b = self._batches.get(bid)
        if b is None:
            self._error(h, 404, "not_found_error", f"no batch {bid}")
            return
        if b["results"] is None:  # billed once, when the batch is first read back
            lines = []
            for r in b["requests"]:
                with self._lock:
                    self.requests.append(r["params"])
                msg = self._message(r["params"], batch=True)
                lines.append(json.dumps({"custom_id": r["custom_id"],
                                         "result": {"type": "succeeded", "message": msg}}))
            b["results"] = ("\n".join(lines) + "\n").encode()
        self._send(h, 200, None, raw=b["results"], content_type="application/x-jsonl")


def verdicts_responder(value_for: Callable[[str, dict], int] | None = None) -> Callable[[dict], Any]:
    """A responder for judge requests: one verdict per metric id offered by the tool schema."""

    def respond(request: dict) -> Any:
        choice = request.get("tool_choice") or {}
        if choice.get("name") != "record_verdicts":
            return default_responder(request)
        tool = next(t for t in request["tools"] if t["name"] == "record_verdicts")
        defs = tool["input_schema"].get("$defs", {})
        verdict = next(iter(defs.values()))
        prop = verdict["properties"]["metric_id"]
        ids = prop["enum"] if "enum" in prop else [prop["const"]]
        return {"verdicts": [{"metric_id": i, "value": value_for(i, request) if value_for else 1,
                              "evidence_steps": [0], "reason": "scripted"} for i in ids]}

    return respond
