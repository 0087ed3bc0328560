"""A local stand-in for OpenAI's Chat Completions API, for producers' own libraries to call.

It answers like the real endpoint: a tool call when tools are offered and no
tool result is in the conversation yet, then a final answer; HTTP 500 with
OpenAI's error body when the last user message asks for it ("FAIL").
"""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ids = itertools.count(1)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802 - http.server's name
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        msgs = req.get("messages") or []
        last_user = next((m for m in reversed(msgs) if m.get("role") == "user"), {})
        text = last_user.get("content") if isinstance(last_user.get("content"), str) else json.dumps(
            last_user.get("content"))
        if "FAIL" in (text or ""):
            self._send(500, {"error": {"message": "upstream overloaded", "type": "server_error", "code": None}})
            return
        n = next(_ids)
        tools = req.get("tools") or []
        answered = any(m.get("role") == "tool" for m in msgs)
        if tools and not answered:
            fn = tools[0]["function"]["name"]
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{n}", "type": "function", "function": {"name": fn, "arguments": '{"city": "Lima"}'}}]}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": "It is sunny in Lima."}
            finish = "stop"
        self._send(200, {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 1_764_000_000,
                         "model": req.get("model", "gpt-test"), "choices": [
                             {"index": 0, "message": message, "finish_reason": finish}],
                         "usage": {"prompt_tokens": 10 + n, "completion_tokens": 5, "total_tokens": 15 + n}})


class FakeOpenAI:
    def __enter__(self) -> FakeOpenAI:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
