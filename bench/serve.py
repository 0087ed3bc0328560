"""`libra serve` throughput: spans acknowledged and spans stored per second, beside the file importer.

The same spans (demo runs as OTLP, one ExportTraceServiceRequest per batch of
traces, as an SDK's BatchSpanProcessor sends them) go three ways, in one run:

- to `libra serve` as protobuf over HTTP, from 4 concurrent clients with
  keep-alive: time until every request is acknowledged (each is fsynced to the
  spool first), and until every span is in the store;
- the same, as OTLP JSON;
- written to a file as OTLP JSON lines and read by `libra ingest` (the
  Collector's file exporter path), in its own process.

CPU seconds are the server's or the ingesting process's own (user + system).

    python bench/serve.py                   # 4,000 traces
    python bench/serve.py --traces 1000     # a quick run
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from libra.demo import generate_runs  # noqa: E402
from traces.export import run_to_otlp  # noqa: E402
from traces.store import Store  # noqa: E402

PER_REQUEST = 20  # traces per request (~250 spans: near the SDK's default batch of 512)


def requests_for(traces: int) -> tuple[list[dict], int]:
    bodies, batch, spans = [], [], 0
    for i, run in enumerate(generate_runs(traces, seed=7, with_feedback=False)):
        req = run_to_otlp(run, f"{i + 1:032x}")
        batch.extend(req["resourceSpans"])
        spans += sum(len(ss["spans"]) for rs in req["resourceSpans"] for ss in rs["scopeSpans"])
        if len(batch) >= PER_REQUEST:
            bodies.append({"resourceSpans": batch})
            batch = []
    if batch:
        bodies.append({"resourceSpans": batch})
    return bodies, spans


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stored_spans(db: Path) -> int:
    with Store(str(db)).connection() as con:
        return int(con.execute("SELECT count(*) FROM otlp_spans").fetchone()[0])


def through_server(bodies: list[bytes], content_type: str, spans: int, tmp: Path) -> dict:
    db, port = tmp / f"serve-{content_type.split('/')[1]}.duckdb", free_port()
    proc = subprocess.Popen([sys.executable, "-m", "libra.cli.main", "serve", "--db", str(db), "--port", str(port),
                             "--max-spool-mb", "4096"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) for _ in range(4)]

        def send(i: int) -> int:
            while True:
                r = clients[i % 4].post("/v1/traces", content=bodies[i], headers={"Content-Type": content_type})
                if r.status_code == 200:
                    return r.status_code
                time.sleep(float(r.headers.get("Retry-After", "1")))

        with cf.ThreadPoolExecutor(4) as pool:
            list(pool.map(send, range(len(bodies))))
        acked = time.perf_counter() - t0
        while stored_spans(db) < spans:
            time.sleep(0.2)
        stored = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(120)
    return {"acked_s": acked, "stored_s": stored, "cpu_s": cpu}


def through_file(bodies: list[dict], tmp: Path) -> dict:
    path, db = tmp / "otlp.jsonl", tmp / "file.duckdb"
    path.write_bytes(b"".join(orjson.dumps(b) + b"\n" for b in bodies))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "libra.cli.main", "ingest", str(path), "--db", str(db), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(proc.stderr.read().decode()[-2000:])
    return {"stored_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=4000)
    args = ap.parse_args()
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    bodies, spans = requests_for(args.traces)
    proto = [ParseDict(b, ExportTraceServiceRequest()).SerializeToString() for b in bodies]
    as_json = [orjson.dumps(b) for b in bodies]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("libra serve, protobuf", through_server(proto, "application/x-protobuf", spans, Path(tmp))),
                ("libra serve, OTLP JSON", through_server(as_json, "application/json", spans, Path(tmp))),
                ("libra ingest FILE (OTLP JSON lines)", through_file(bodies, Path(tmp)))]
    print(f"{spans} spans in {args.traces} traces, {len(bodies)} requests of {PER_REQUEST} traces; 4 clients")
    print(f"{'path':<38} {'acked spans/s':>14} {'stored spans/s':>15} {'stored spans/CPU-s':>19}")
    for name, r in rows:
        ack = f"{spans / r['acked_s']:,.0f}" if "acked_s" in r else "-"
        print(f"{name:<38} {ack:>14} {spans / r['stored_s']:>15,.0f} {spans / r['cpu_s']:>19,.0f}")


if __name__ == "__main__":
    main()
