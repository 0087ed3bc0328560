"""`libra serve` (issue 19 §1): OTLP/HTTP in, fed by the real OpenTelemetry SDK's exporters.

The server runs as its own process, as in production; the spans come from the
SDK's TracerProvider with BatchSpanProcessor and OTLPSpanExporter (protobuf
over HTTP), logs from its LoggerProvider and OTLPLogExporter.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from traces.store import Store

TOKEN = "s3cret-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db: Path, spool: Path, *extra: str, token: str | None = TOKEN):
        self.port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("LIBRA_OTLP_TOKEN", None)
        if token:
            env["LIBRA_OTLP_TOKEN"] = token
        self.log = open(db.parent / f"serve-{self.port}.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "libra.cli.main", "serve", "--db", str(db),
                                      "--port", str(self.port), "--spool", str(spool), *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                assert self.proc.poll() is None, (db.parent / f"serve-{self.port}.log").read_text()
                time.sleep(0.2)
        raise AssertionError("libra serve did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig=signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        rc = self.proc.wait(60)
        self.log.close()
        return rc


def _tracer(endpoint: str, token: str | None = TOKEN, service: str = "shop-agent"):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.version": "1.4.2"}))
    exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces",
                                headers={"Authorization": f"Bearer {token}"} if token else None)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100))
    return provider


def _store_runs(db: Path) -> dict:
    with Store(str(db)).connection() as con:
        return {r: (n, m) for r, n, m in con.execute("SELECT run_id, n_steps, metadata FROM runs").fetchall()}


def _wait(pred, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError("timed out")


@pytest.fixture
def paths(tmp_path):
    db = tmp_path / "libra.duckdb"
    return db, tmp_path / "spool"


def test_the_sdks_exporters_land_spans_and_logs_and_a_split_trace_is_rebuilt_whole(paths):
    from opentelemetry._logs import LogRecord
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    db, spool = paths
    server = Server(db, spool)
    try:
        provider = _tracer(server.url)
        tracer = provider.get_tracer("test-agent")
        logs = LoggerProvider()
        logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(
            endpoint=f"{server.url}/v1/logs", headers={"Authorization": f"Bearer {TOKEN}"})))
        with tracer.start_as_current_span("invoke_agent shopper", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "shopper"}) as root:
            with tracer.start_as_current_span("chat gpt-test", attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-test",
                    "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 5}) as chat:
                # content as log events, as opentelemetry-instrumentation-openai-v2 sends it
                ctx = chat.get_span_context()
                logs.get_logger("openai").emit(LogRecord(
                    trace_id=ctx.trace_id, span_id=ctx.span_id, trace_flags=ctx.trace_flags,
                    event_name="gen_ai.user.message", body={"content": "Find me red shoes"}))
            # the first spans go out before the trace is over: the trace arrives in two requests
            provider.force_flush()
            with tracer.start_as_current_span("execute_tool search", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}):
                pass
            trace_id = format(root.get_span_context().trace_id, "032x")
        provider.force_flush()
        logs.force_flush()
        run_id = f"otlp-json:{trace_id}"

        def whole():
            runs = _store_runs(db)
            return run_id in runs and json.loads(runs[run_id][1]).get("spans") == 3 and runs[run_id]
        n_steps, meta = _wait(whole)

        def told() -> bool:  # the drain's account of what it read is written just after the runs
            with Store(str(db)).connection() as con:
                return con.execute("SELECT sum(records) FROM ingest_files WHERE source LIKE 'otlp-http%'"
                                   ).fetchone()[0] == 4
        _wait(told)
        with Store(str(db)).connection() as con:
            steps = con.execute("SELECT kind, content, tool_name FROM steps WHERE run_id = ? ORDER BY idx",
                                [run_id]).fetchall()
            agent, = con.execute("SELECT agent FROM runs WHERE run_id = ?", [run_id]).fetchone()
            kept, = con.execute("SELECT count(*) FROM otlp_logs").fetchone()
            tally = con.execute("SELECT sum(records), sum(stored), sum(quarantined) FROM ingest_files "
                                "WHERE source LIKE 'otlp-http%'").fetchone()
        assert any(k == "user_message" and "red shoes" in (c or "") for k, c, _ in steps), steps  # joined from the log
        assert any(t == "search" for _, _, t in steps), steps
        assert agent == "shopper" and kept == 1
        assert tally == (4, 4, 0)  # three spans and one log record read, all stored

        # the wrong token, a body that is not OTLP, a media type that is not: refused, nothing stored
        r = httpx.post(f"{server.url}/v1/traces", content=b"{}", headers={"Content-Type": "application/json"})
        assert r.status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = httpx.post(f"{server.url}/v1/traces", content=b"\x0a\xff\xff", headers={
            **auth, "Content-Type": "application/x-protobuf"})
        assert r.status_code == 400 and r.headers["content-type"] == "application/x-protobuf"
        assert httpx.post(f"{server.url}/v1/traces", content=b"x", headers={
            **auth, "Content-Type": "text/plain"}).status_code == 415
        # OTLP JSON, gzipped, with one bad span among good ones: the good one lands, the bad one is quarantined
        good = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat", "startTimeUnixNano": "1",
                "endTimeUnixNano": "2", "attributes": [{"key": "gen_ai.operation.name",
                                                        "value": {"stringValue": "chat"}}]}
        body = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [good, {"traceId": "zz",
                                                                                      "name": "bad"}]}]}]}
        r = httpx.post(f"{server.url}/v1/traces", content=gzip.compress(json.dumps(body).encode()), headers={
            **auth, "Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert r.status_code == 200 and r.json() == {}
        _wait(lambda: f"otlp-json:{'ab' * 16}" in _store_runs(db))
        with Store(str(db)).connection() as con:
            reason, = _wait(lambda: con.execute("SELECT reason FROM quarantine WHERE source = 'otlp-http'")
                            .fetchone())
        assert "traceId" in reason
    finally:
        assert server.stop() == 0
    assert not list(spool.glob("*.otlp.json"))  # a clean stop leaves nothing spooled


def test_every_acknowledged_span_survives_kill_9_and_a_full_spool_pushes_back(paths):
    """The store is held by another process, so nothing can be written: requests are spooled and acknowledged
    until the spool is full, then refused with Retry-After. Killed with -9, restarted once the store is free,
    the server stores every span it acknowledged."""
    db, spool = paths
    server = Server(db, spool, "--max-spool-mb", "1")
    holder = duckdb.connect(str(db))  # another process's lock on the file: the drainer cannot write
    acked, refused = [], []
    try:
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        pad = "x" * 20_000
        for i in range(120):
            tid = f"{i:032x}"
            spans = [{"traceId": tid, "spanId": f"{i:08x}{j:08x}", "name": f"step {j}", "startTimeUnixNano":
                      str(10 + j), "endTimeUnixNano": str(11 + j), "attributes": [
                          {"key": "note", "value": {"stringValue": pad}}]} for j in range(3)]
            r = httpx.post(f"{server.url}/v1/traces", headers=auth, content=json.dumps(
                {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
            if r.status_code == 200:
                acked.append(tid)
            else:
                assert r.status_code in (429, 503) and int(r.headers["Retry-After"]) > 0, r.text
                refused.append(tid)
        assert acked and refused, (len(acked), len(refused))
    finally:
        server.stop(signal.SIGKILL)
        holder.close()
    assert len(list(spool.glob("*.otlp.json"))) == len(acked)  # durable before it was acknowledged
    server = Server(db, spool)
    try:
        def stored():
            with Store(str(db)).connection() as con:
                return con.execute("SELECT count(DISTINCT trace_id), count(*) FROM otlp_spans").fetchone()
        assert _wait(lambda: stored() == (len(acked), 3 * len(acked)))
        runs = _wait(lambda: (r := _store_runs(db)) and len(r) == len(acked) and r)
        assert set(runs) == {f"otlp-json:{t}" for t in acked}
    finally:
        assert server.stop() == 0
