"""Export: runs, steps and feedback out of the store, streamed.

- Parquet: one file per table, for DuckDB, Spark, BigQuery and the like.
- JSONL: one run per line in Libra's generic format (steps and feedback
  inline), which `libra ingest` reads back.
- OTLP JSON: runs as OpenTelemetry GenAI spans, for trace tools.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from traces.importers.generic import run_to_record
from traces.annotation import feedback
from traces.model import Feedback, Run, Step
from traces.store import Store

TABLES = ("runs", "steps", "feedback", "quarantine")


def _where(agent: str | None, since: str | None, fmt: str | None) -> tuple[str, list]:
    clauses, params = [], []
    if agent:
        clauses.append("agent = ?")
        params.append(agent)
    if fmt:
        clauses.append("format = ?")
        params.append(fmt)
    if since:
        clauses.append("coalesce(started_at, ingested_at) >= CAST(? AS TIMESTAMP)")
        params.append(since)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def export_parquet(store: Store, out_dir: str | os.PathLike, *, agent: str | None = None,
                   since: str | None = None, fmt: str | None = None) -> dict[str, int]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    where, params = _where(agent, since, fmt)
    run_filter = f"run_id IN (SELECT run_id FROM runs{where})"
    queries = {
        "runs": (f"SELECT * FROM runs{where} ORDER BY run_id", params),
        "steps": (f"SELECT * FROM steps WHERE {run_filter} ORDER BY run_id, idx", params),
        "feedback": (f"SELECT * FROM feedback WHERE {run_filter} ORDER BY run_id, created_at", params),
        "quarantine": ("SELECT * FROM quarantine ORDER BY id", []),
    }
    counts = {}
    with store.connection() as con:
        for table, (sql, p) in queries.items():
            reader = con.execute(sql, p).to_arrow_reader(50_000)
            path = out / f"{table}.parquet"
            n = 0
            with pq.ParquetWriter(path, reader.schema, compression="zstd") as w:
                for batch in reader:
                    w.write_batch(batch)
                    n += batch.num_rows
            counts[table] = n
    return counts


def iter_runs(store: Store, **filters) -> Iterator[Run]:
    """Runs with their steps and live feedback, read back from the store page by page."""
    for _, run in iter_runs_with_ids(store, **filters):
        yield run


def load_runs(store: Store, run_ids: Iterable[str]) -> dict[str, Run]:
    """Runs by their stored id."""
    return dict(iter_runs_with_ids(store, run_ids=list(run_ids)))


def iter_runs_with_ids(store: Store, *, agent: str | None = None, since: str | None = None,
                       fmt: str | None = None, run_ids: Iterable[str] | None = None,
                       page: int = 500) -> Iterator[tuple[str, Run]]:
    """(stored run id, run) pairs, page by page."""
    where, params = _where(agent, since, fmt)
    if run_ids is not None:
        ids = list(run_ids)
        where = (where + " AND " if where else " WHERE ") + "run_id IN (SELECT unnest(?::VARCHAR[]))"
        params = [*params, ids]
    last = ""
    while True:
        with store.connection() as con:
            clause = (where + " AND " if where else " WHERE ") + "run_id > ?"
            runs = con.execute(
                f"SELECT run_id, native_id, format, source, agent, model, task, started_at, ended_at,"
                f" outcome, reward, gold, metadata FROM runs{clause} ORDER BY run_id LIMIT ?",
                [*params, last, page],
            ).fetchall()
            if not runs:
                return
            ids = [r[0] for r in runs]
            steps: dict[str, list[Step]] = {}
            for row in con.execute(
                "SELECT run_id, kind, content, actor, tool_name, tool_args, span_id, parent_id,"
                " started_at, ended_at, input_tokens, output_tokens, is_error, metadata FROM steps"
                " WHERE run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY run_id, idx", [ids],
            ).fetchall():
                steps.setdefault(row[0], []).append(Step(
                    kind=row[1], content=row[2] or "", actor=row[3], tool_name=row[4],
                    tool_args=orjson.loads(row[5]) if row[5] is not None else None,
                    span_id=row[6], parent_id=row[7], started_at=row[8], ended_at=row[9],
                    input_tokens=row[10], output_tokens=row[11], is_error=bool(row[12]),
                    metadata=orjson.loads(row[13]) if row[13] else None,
                ))
        fb: dict[str, list[Feedback]] = {}
        for f in feedback.load(store, ids):
            fb.setdefault(f.run_id or "", []).append(f)
        for r in runs:
            yield r[0], Run(
                native_id=r[1] or r[0], format=r[2], source=r[3], agent=r[4], model=r[5], task=r[6],
                started_at=r[7], ended_at=r[8], outcome=r[9], reward=r[10],
                gold=orjson.loads(r[11]) if r[11] else None,
                metadata=orjson.loads(r[12]) if r[12] else None,
                steps=tuple(steps.get(r[0], ())), feedback=tuple(fb.get(r[0], ())),
                globally_unique_id=True,
            )
        last = runs[-1][0]


def write_jsonl(runs: Iterable[Run], path: str | os.PathLike) -> int:
    n = 0
    with open(path, "wb") as f:
        for run in runs:
            f.write(orjson.dumps(run_to_record(run), default=str))
            f.write(b"\n")
            n += 1
    return n


def export_jsonl(store: Store, path: str | os.PathLike, **filters) -> int:
    return write_jsonl(iter_runs(store, **filters), path)


# -- OTLP JSON -------------------------------------------------------------------

def _attr(key: str, value) -> dict:
    if isinstance(value, bool):
        v = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}
    elif isinstance(value, float):
        v = {"doubleValue": value}
    else:
        v = {"stringValue": value if isinstance(value, str) else orjson.dumps(value).decode()}
    return {"key": key, "value": v}


def _ns(t, fallback: int) -> str:
    return str(int(t.timestamp() * 1e9)) if t is not None else str(fallback)


def run_to_otlp(run: Run, trace_id: str) -> dict:
    """One run as an OTLP ExportTraceServiceRequest using GenAI semantic conventions."""
    root_id = trace_id[:16]
    base = int(run.started_at.timestamp() * 1e9) if run.started_at else 1_700_000_000_000_000_000
    spans = []
    root_attrs = [_attr("gen_ai.operation.name", "invoke_agent")]
    if run.agent:
        root_attrs.append(_attr("gen_ai.agent.name", run.agent))
    spans.append({"traceId": trace_id, "spanId": root_id, "name": f"invoke_agent {run.agent or ''}".strip(),
                  "kind": 1, "startTimeUnixNano": str(base),
                  "endTimeUnixNano": _ns(run.ended_at, base + (len(run.steps) + 1) * 1000),
                  "attributes": root_attrs, "status": {"code": 2 if run.outcome == "error" else 0}})
    history: list[dict] = []
    steps = run.steps
    i = 0
    seq = 1
    while i < len(steps):
        s = steps[i]
        sid = format(int(root_id, 16) ^ seq, "016x")
        seq += 1
        t0 = base + i * 1000
        if s.kind in ("user_message", "system"):
            history.append({"role": "user" if s.kind == "user_message" else "system",
                            "parts": [{"type": "text", "content": s.content}]})
            i += 1
            continue
        if s.kind in ("agent_message", "tool_call", "thought"):
            parts, j = [], i
            while j < len(steps) and steps[j].kind in ("thought", "agent_message", "tool_call"):
                st = steps[j]
                if st.kind == "thought":
                    parts.append({"type": "reasoning", "content": st.content})
                elif st.kind == "agent_message":
                    parts.append({"type": "text", "content": st.content})
                else:
                    parts.append({"type": "tool_call", "name": st.tool_name, "arguments": st.tool_args})
                j += 1
            attrs = [_attr("gen_ai.operation.name", "chat"),
                     _attr("gen_ai.input.messages", history), _attr("gen_ai.output.messages",
                                                                      [{"role": "assistant", "parts": parts}])]
            if run.model:
                attrs.append(_attr("gen_ai.request.model", run.model))
            if s.input_tokens is not None:
                attrs.append(_attr("gen_ai.usage.input_tokens", s.input_tokens))
            if s.output_tokens is not None:
                attrs.append(_attr("gen_ai.usage.output_tokens", s.output_tokens))
            spans.append({"traceId": trace_id, "spanId": sid, "parentSpanId": root_id,
                          "name": f"chat {run.model or ''}".strip(), "kind": 3,
                          "startTimeUnixNano": str(t0), "endTimeUnixNano": str(t0 + 500),
                          "attributes": attrs, "status": {}})
            history = []
            i = j
            continue
        if s.kind == "tool_result":
            attrs = [_attr("gen_ai.operation.name", "execute_tool"),
                     _attr("gen_ai.tool.name", s.tool_name or "tool"),
                     _attr("gen_ai.tool.call.result", s.content)]
            spans.append({"traceId": trace_id, "spanId": sid, "parentSpanId": root_id,
                          "name": f"execute_tool {s.tool_name or 'tool'}", "kind": 1,
                          "startTimeUnixNano": str(t0), "endTimeUnixNano": str(t0 + 500),
                          "attributes": attrs, "status": {"code": 2 if s.is_error else 0}})
            i += 1
            continue
        i += 1  # observations have no GenAI span; they ride along as history
        history.append({"role": "user", "parts": [{"type": "text", "content": s.content}]})
    return {"resourceSpans": [{
        "resource": {"attributes": [_attr("service.name", run.agent or "agent")]},
        "scopeSpans": [{"scope": {"name": "libra.export"}, "spans": spans}],
    }]}


def export_otlp(store: Store, path: str | os.PathLike, **filters) -> int:
    """Runs as OTLP JSON, one ExportTraceServiceRequest per line; a run's trace id derives from its native id."""
    n = 0
    with open(path, "wb") as f:
        for run in iter_runs(store, **filters):
            tid = hashlib.sha256(run.native_id.encode()).hexdigest()[:32]
            f.write(orjson.dumps(run_to_otlp(run, tid)) + b"\n")
            n += 1
    return n
