"""Export: runs, steps and feedback out of the store, streamed.

- Parquet: one file per table, for DuckDB, Spark, BigQuery and the like.
- JSONL: one run per line in Libra's generic format (steps and feedback
  inline), which `libra ingest` reads back.
- OTLP JSON: runs as OpenTelemetry GenAI spans, for trace tools.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC
from pathlib import Path

import orjson
import pyarrow as pa
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
            json_cols = {c for c, t, *_ in con.execute(f"DESCRIBE {table}").fetchall() if t == "JSON"}
            reader = con.execute(sql, p).to_arrow_reader(50_000)
            schema = _typed(reader.schema, json_cols)
            path = out / f"{table}.parquet"
            n = 0
            with pq.ParquetWriter(path, schema, compression="zstd") as w:
                for batch in reader:
                    w.write_table(pa.Table.from_batches([batch]).cast(schema))
                    n += batch.num_rows
            counts[table] = n
    return counts


def _typed(schema: pa.Schema, json_cols: set[str]) -> pa.Schema:
    """Times as UTC instants (the store keeps naive UTC), JSON columns as Parquet's JSON type."""
    fields = []
    for f in schema:
        if pa.types.is_timestamp(f.type) and f.type.tz is None:
            f = f.with_type(pa.timestamp(f.type.unit, tz="UTC"))
        elif f.name in json_cols and pa.types.is_string(f.type):
            f = f.with_type(pa.json_(pa.string()))
        fields.append(f)
    return pa.schema(fields)


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
    return str(int(t.replace(tzinfo=UTC).timestamp() * 1e9)) if t is not None else str(fallback)


_HEX16, _HEX32 = re.compile(r"[0-9a-f]{16}"), re.compile(r"[0-9a-f]{32}")


def _root_id(run: Run, trace_id: str) -> str:
    """The root span's id: the parent most steps hang from that is no step's own span, else one from the trace id."""
    own = {s.span_id for s in run.steps if s.span_id}
    parents = Counter(s.parent_id for s in run.steps if s.parent_id and s.parent_id not in own
                      and _HEX16.fullmatch(s.parent_id))
    return parents.most_common(1)[0][0] if parents else trace_id[:16]


def _run_attrs(run: Run, run_id: str | None) -> list[dict]:
    """What Libra knows of the run beyond its spans, as root span attributes (read back by the importers)."""
    meta = run.metadata or {}
    attrs = [_attr("gen_ai.operation.name", "invoke_agent")]
    pairs = [("gen_ai.agent.name", run.agent), ("libra.run_id", run_id), ("libra.format", run.format),
             ("libra.outcome", run.outcome), ("libra.reward", run.reward), ("libra.task", run.task),
             ("libra.gold", run.gold or None), ("session.id", meta.get("session_id")),
             ("gen_ai.conversation.id", meta.get("conversation_id")), ("user.id", meta.get("user_id")),
             ("gen_ai.agent.version", meta.get("agent_version"))]
    attrs += [_attr(k, v) for k, v in pairs if v is not None]
    return attrs


def _events(run: Run, scores: Iterable[dict], fallback: int) -> list[dict]:
    """Feedback and verdicts as events of the root span (Phoenix and Langfuse keep span events)."""
    out = []
    for f in run.feedback:
        at = [_attr("libra.feedback.author", f.author), _attr("libra.feedback.text", f.text)]
        at += [_attr(k, v) for k, v in (("libra.feedback.rating", f.rating), ("libra.feedback.steps", list(f.steps)),
                                        ("libra.feedback.id", f.feedback_id), ("libra.feedback.focus", f.focus))
               if v not in (None, ())]
        out.append({"name": "libra.feedback", "timeUnixNano": _ns(f.created_at, fallback), "attributes": at})
    for sc in scores:
        out.append({"name": "libra.score", "timeUnixNano": str(fallback),
                    "attributes": [_attr(f"libra.score.{k}", v) for k, v in sc.items() if v is not None]})
    return out


def run_to_otlp(run: Run, trace_id: str, *, run_id: str | None = None, scores: Iterable[dict] = ()) -> dict:
    """One run as an OTLP ExportTraceServiceRequest using GenAI semantic conventions.

    The ids and times a run was read with are kept (span and parent ids, start and
    end of each step), so a trace exported and read back is the same trace; runs
    that never had them get ids derived from the trace id and times a step apart.
    """
    root_id = _root_id(run, trace_id)
    base = int(run.started_at.replace(tzinfo=UTC).timestamp() * 1e9) if run.started_at \
        else 1_700_000_000_000_000_000
    used = {root_id}
    spans = []

    def span_id(s: Step, seq: int) -> str:
        sid = s.span_id if s.span_id and _HEX16.fullmatch(s.span_id) and s.span_id not in used else None
        sid = sid or format(int(root_id, 16) ^ seq, "016x")
        while sid in used:
            seq += 7919
            sid = format(int(root_id, 16) ^ seq, "016x")
        used.add(sid)
        return sid

    def parent(s: Step) -> str:
        return s.parent_id if s.parent_id in used else root_id

    spans.append({"traceId": trace_id, "spanId": root_id, "name": f"invoke_agent {run.agent or ''}".strip(),
                  "kind": 1, "startTimeUnixNano": str(base),
                  "endTimeUnixNano": _ns(run.ended_at, base + (len(run.steps) + 1) * 1000),
                  "attributes": _run_attrs(run, run_id), "events": _events(run, scores, base),
                  "status": {"code": 2 if run.outcome == "error" else 0}})
    history: list[dict] = []
    steps = run.steps
    i = 0
    seq = 1
    pending_args = None
    while i < len(steps):
        s = steps[i]
        t0 = base + i * 1000
        if s.kind in ("user_message", "system"):
            history.append({"role": "user" if s.kind == "user_message" else "system",
                            "parts": [{"type": "text", "content": s.content}]})
            i += 1
            continue
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        if s.kind == "tool_call" and s.span_id and nxt is not None and nxt.kind == "tool_result" \
                and nxt.span_id == s.span_id:
            pending_args = s.tool_args  # a call read from its tool span goes back on that span
            i += 1
            continue
        if s.kind in ("agent_message", "tool_call", "thought"):
            parts, j = [], i
            while j < len(steps) and steps[j].kind in ("thought", "agent_message", "tool_call") and \
                    (j == i or steps[j].span_id == s.span_id or not s.span_id):
                st = steps[j]
                if st.kind == "thought":
                    parts.append({"type": "reasoning", "content": st.content})
                elif st.kind == "agent_message":
                    parts.append({"type": "text", "content": st.content})
                else:
                    parts.append({"type": "tool_call", "name": st.tool_name, "arguments": st.tool_args})
                j += 1
            call = (s.metadata or {}).get("llm_call") or {}
            attrs = [_attr("gen_ai.operation.name", "chat"),
                     _attr("gen_ai.input.messages", history), _attr("gen_ai.output.messages",
                                                                      [{"role": "assistant", "parts": parts}])]
            model = call.get("request_model") or call.get("model") or run.model
            more = [("gen_ai.request.model", model), ("gen_ai.usage.input_tokens", s.input_tokens),
                    ("gen_ai.usage.output_tokens", s.output_tokens), ("gen_ai.agent.name", s.actor),
                    ("gen_ai.response.id", call.get("response_id")),
                    ("gen_ai.response.finish_reasons", call.get("finish_reasons"))]
            attrs += [_attr(k, v) for k, v in more if v is not None]
            spans.append({"traceId": trace_id, "spanId": span_id(s, seq), "parentSpanId": parent(s),
                          "name": f"chat {model or ''}".strip(), "kind": 3,
                          "startTimeUnixNano": _ns(s.started_at, t0),
                          "endTimeUnixNano": _ns(s.ended_at or s.started_at, t0 + 500),
                          "attributes": attrs, "status": {"code": 2} if s.is_error else {}})
            seq += 1
            history = []
            i = j
            continue
        if s.kind == "tool_result":
            attrs = [_attr("gen_ai.operation.name", "execute_tool"),
                     _attr("gen_ai.tool.name", s.tool_name or "tool"),
                     _attr("gen_ai.tool.call.result", s.content)]
            if pending_args is not None:
                attrs.append(_attr("gen_ai.tool.call.arguments", pending_args))
                pending_args = None
            spans.append({"traceId": trace_id, "spanId": span_id(s, seq), "parentSpanId": parent(s),
                          "name": f"execute_tool {s.tool_name or 'tool'}", "kind": 1,
                          "startTimeUnixNano": _ns(s.started_at, t0),
                          "endTimeUnixNano": _ns(s.ended_at or s.started_at, t0 + 500),
                          "attributes": attrs, "status": {"code": 2 if s.is_error else 0}})
            seq += 1
            i += 1
            continue
        i += 1  # observations have no GenAI span; they ride along as history
        history.append({"role": "user", "parts": [{"type": "text", "content": s.content}]})
    resource = [_attr("service.name", run.agent or "agent")]
    if (run.metadata or {}).get("release"):
        resource.append(_attr("service.version", run.metadata["release"]))  # type: ignore[index]
    return {"resourceSpans": [{
        "resource": {"attributes": resource},
        "scopeSpans": [{"scope": {"name": "libra.export"}, "spans": spans}],
    }]}


def trace_id_of(run: Run, run_id: str) -> str:
    """A trace's own id when the run was one (read from spans), else one derived from the run id."""
    native = (run.native_id or "").lower()
    return native if _HEX32.fullmatch(native) else hashlib.sha256(run_id.encode()).hexdigest()[:32]


def _scores_by_run(store: Store, run_ids: list[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for rid, *row in store.execute(
            "SELECT run_id, metric_set_id, metric_set_version, metric_id, nullif(focus, ''), value, backend, reason "
            "FROM scores WHERE run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY run_id, metric_set_id, metric_id",
            [run_ids]):
        out.setdefault(rid, []).append(dict(zip(("metric_set", "version", "metric", "focus", "value", "backend",
                                                 "reason"), row, strict=True)))
    return out


def export_otlp(store: Store, path: str | os.PathLike, **filters) -> int:
    """Runs as OTLP JSON, one ExportTraceServiceRequest per line, with their feedback and verdicts as events.

    Read back by `libra ingest`, each run keeps its run id, outcome, reward, gold labels and feedback.
    """
    n = 0
    with open(path, "wb") as f:
        page: list[tuple[str, Run]] = []

        def flush() -> None:
            scores = _scores_by_run(store, [rid for rid, _ in page])
            for rid, run in page:
                f.write(orjson.dumps(run_to_otlp(run, trace_id_of(run, rid), run_id=rid,
                                                 scores=scores.get(rid, ())), default=str) + b"\n")
            page.clear()

        for rid, run in iter_runs_with_ids(store, **filters):
            page.append((rid, run))
            n += 1
            if len(page) >= 500:
                flush()
        flush()
    return n


# -- scores and feedback in other tools' shapes ----------------------------------

def _annotations(store: Store, **filters) -> Iterator[tuple[str, Run, str, str, list[dict]]]:
    """(run id, run, trace id, root span id, verdicts) per run, as the OTLP export names them."""
    page: list[tuple[str, Run]] = []

    def flush() -> Iterator[tuple[str, Run, str, str, list[dict]]]:
        scores = _scores_by_run(store, [rid for rid, _ in page])
        for rid, run in page:
            tid = trace_id_of(run, rid)
            yield rid, run, tid, _root_id(run, tid), scores.get(rid, [])
        page.clear()

    for rid, run in iter_runs_with_ids(store, **filters):
        page.append((rid, run))
        if len(page) >= 500:
            yield from flush()
    yield from flush()


def _stable_id(*parts) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]


def export_langfuse(store: Store, path: str | os.PathLike, **filters) -> int:
    """Verdicts and notes as Langfuse score objects (POST /api/public/scores bodies), one per line.

    Trace ids are those `--as otlp` gives, so scores land on traces sent there. Ids are
    stable, so sending the file twice updates rather than duplicates.
    """
    n = 0
    with open(path, "wb") as f:
        for rid, run, tid, _, scores in _annotations(store, **filters):
            rows = [{"id": _stable_id(rid, sc["metric_set"], sc["version"], sc["metric"], sc["focus"], sc["backend"]),
                     "traceId": tid, "name": f"{sc['metric_set']}.{sc['metric']}", "value": float(sc["value"]),
                     "dataType": "NUMERIC", "comment": sc["reason"] or None,
                     "metadata": {"libra_run_id": rid, "metric_set_version": sc["version"], "focus": sc["focus"],
                                  "judge": sc["backend"]}} for sc in scores]
            for fb in run.feedback:
                rated = fb.rating is not None
                rows.append({"id": _stable_id(rid, "feedback", fb.author, fb.text), "traceId": tid,
                             "name": "feedback", "value": float(fb.rating) if rated else "note",
                             "dataType": "NUMERIC" if rated else "CATEGORICAL", "comment": fb.text,
                             "metadata": {"libra_run_id": rid, "author": fb.author, "steps": list(fb.steps),
                                          "focus": fb.focus}})
            for row in rows:
                f.write(orjson.dumps(row) + b"\n")
                n += 1
    return n


def export_phoenix(store: Store, path: str | os.PathLike, **filters) -> int:
    """Verdicts and notes as Phoenix span annotations: the body of POST /v1/span_annotations, on each run's root span."""
    data = []
    for rid, run, _, root, scores in _annotations(store, **filters):
        for sc in scores:
            data.append({"span_id": root, "name": f"{sc['metric_set']}.{sc['metric']}", "annotator_kind": "LLM"
                         if "llm" in (sc["backend"] or "") else "CODE",
                         "result": {"score": float(sc["value"]), "label": {1: "pass", -1: "fail"}.get(sc["value"], "n/a"),
                                    "explanation": sc["reason"] or None},
                         "metadata": {"libra_run_id": rid, "focus": sc["focus"], "judge": sc["backend"]},
                         "identifier": _stable_id(rid, sc["metric_set"], sc["metric"], sc["focus"])})
        for fb in run.feedback:
            data.append({"span_id": root, "name": "feedback", "annotator_kind": "HUMAN",
                         "result": {"score": fb.rating, "explanation": fb.text},
                         "metadata": {"libra_run_id": rid, "author": fb.author, "steps": list(fb.steps)},
                         "identifier": _stable_id(rid, "feedback", fb.author, fb.text)})
    Path(path).write_bytes(orjson.dumps({"data": data}))
    return len(data)
