"""What turning OTLP spans into steps would cost done by DuckDB in SQL: a sketch of the mapping's heavy parts.

A reference for `bench/ingest.py` (issue 21, ingest at a third of the raw load), not an importer: Libra maps
spans in Python (`traces/importers/_spans.py`), which costs ~5 times DuckDB's flat load of the same spans and
no per-span Python can get within 3 times. This does, in SQL, the work that dominates that mapping for the
GenAI conventions the bench's spans follow: unnest the requests, read each span's attributes into a map,
parse its input and output messages, keep an input message only where the call holds it more often than
every earlier call of the trace did (frameworks resend the history), number the steps of each trace, hash
their content and sum each trace into a run. It leaves out what a real importer must also do (OpenInference
and the older conventions, events, run facts, the span outline, quarantine of bad records, the store's
schema and indexes), so its CPU is a floor for that design, not a figure for it.

    python bench/otlp_sql_sketch.py OTLP.jsonl OUT.duckdb    # prints spans, steps, runs, then the spans
"""

import sys
import time

import duckdb

src, db = sys.argv[1], sys.argv[2]
con = duckdb.connect(db)
con.execute("SET enable_progress_bar = false")
t = time.perf_counter()
con.execute("""
CREATE TEMP TABLE spans AS
WITH r AS (SELECT unnest(resourceSpans) rs FROM read_json(?, format='newline_delimited', maximum_object_size=1073741824)),
s AS (SELECT rs.resource.attributes AS res, unnest(rs.scopeSpans) ss FROM r),
sp AS (SELECT res, ss.scope.name AS scope, unnest(ss.spans) AS span FROM s)
SELECT lower(span.traceId) AS trace_id, lower(span.spanId) AS span_id, lower(span.parentSpanId) AS parent_id, span.name AS name,
       make_timestamp_ns(span.startTimeUnixNano::HUGEINT::BIGINT) AS t0, make_timestamp_ns(span.endTimeUnixNano::HUGEINT::BIGINT) AS t1,
       span.status.code = 2 AS error,
       map_from_entries(list_transform(span.attributes, a -> {'k': a.key, 'v': coalesce(a.value.stringValue, a.value.intValue::VARCHAR, a.value.doubleValue::VARCHAR)})) AS a,
       map_from_entries(list_transform(res, a -> {'k': a.key, 'v': a.value.stringValue})) AS r
FROM sp
""", [src])
con.execute("""
CREATE TEMP TABLE calls AS
SELECT trace_id, span_id, parent_id, name, t0, t1, error,
       coalesce(a['gen_ai.operation.name'], split_part(name, ' ', 1)) AS op,
       a['gen_ai.input.messages'] AS inp, a['gen_ai.output.messages'] AS outp,
       a['gen_ai.request.model'] AS model, a['gen_ai.usage.input_tokens']::BIGINT AS tin, a['gen_ai.usage.output_tokens']::BIGINT AS tout,
       a['gen_ai.tool.name'] AS tool, a['gen_ai.tool.call.result'] AS result, a['gen_ai.agent.name'] AS agent, r['service.name'] AS service
FROM spans
""")
T = '[{"role":"VARCHAR","parts":[{"type":"VARCHAR","content":"VARCHAR","name":"VARCHAR","id":"VARCHAR","arguments":"JSON"}]}]'
con.execute(f"""
CREATE TABLE steps AS
WITH msgs AS (
  SELECT trace_id, span_id, parent_id, t0, t1, 'in' AS dir, unnest(json_transform(inp, '{T}')) AS m, generate_subscripts(json_transform(inp, '{T}'), 1) AS mi FROM calls WHERE op = 'chat'
  UNION ALL
  SELECT trace_id, span_id, parent_id, t0, t1, 'out', unnest(json_transform(outp, '{T}')), generate_subscripts(json_transform(outp, '{T}'), 1) FROM calls WHERE op = 'chat'
), parts AS (
  SELECT trace_id, span_id, parent_id, t0, t1, dir, mi, m.role AS role, unnest(m.parts) AS p, generate_subscripts(m.parts, 1) AS pi FROM msgs
), ins AS (  -- a message is new when this call holds it more often than all earlier calls did
  SELECT *, row_number() OVER (PARTITION BY trace_id, span_id, role, p.content ORDER BY mi, pi) AS k FROM parts WHERE dir = 'in'
), ins2 AS (
  SELECT *, coalesce(max(k) OVER (PARTITION BY trace_id, role, p.content ORDER BY t0 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS seen FROM ins
), out_steps AS (
  SELECT trace_id, span_id, parent_id, t0, t1, mi, pi, 1 AS ord,
         CASE p.type WHEN 'reasoning' THEN 'thought' WHEN 'tool_call' THEN 'tool_call' ELSE 'agent_message' END AS kind,
         CASE WHEN p.type = 'tool_call' THEN '' ELSE p.content END AS content, p.name AS tool_name, p.arguments::VARCHAR AS tool_args
  FROM parts WHERE dir = 'out'
), all_steps AS (
  SELECT trace_id, span_id, parent_id, t0, t1, mi, pi, 0 AS ord, CASE role WHEN 'system' THEN 'system' ELSE 'user_message' END AS kind,
         p.content AS content, NULL AS tool_name, NULL AS tool_args FROM ins2 WHERE k > seen AND p.content <> ''
  UNION ALL SELECT * FROM out_steps
  UNION ALL SELECT trace_id, span_id, parent_id, t0, t1, 0, 0, 2, 'tool_result', result, tool, NULL FROM calls WHERE op = 'execute_tool'
)
SELECT trace_id AS run_id, row_number() OVER (PARTITION BY trace_id ORDER BY t0, ord, mi, pi) - 1 AS idx, kind, content, tool_name, tool_args,
       span_id, parent_id, t0 AS started_at, t1 AS ended_at, md5(coalesce(content, '')) AS h
FROM all_steps
""")
con.execute("""
CREATE TABLE runs AS SELECT trace_id AS run_id, min(t0) AS started_at, max(t1) AS ended_at, any_value(agent) FILTER (WHERE agent IS NOT NULL) AS agent,
  any_value(model) FILTER (WHERE model IS NOT NULL) AS model, sum(tin) AS tin, sum(tout) AS tout, count(*) AS spans, bool_or(error) AS error,
  any_value(service) AS service FROM calls GROUP BY trace_id
""")
spans, steps, runs = con.execute(
    "SELECT (SELECT count(*) FROM spans), (SELECT count(*) FROM steps), (SELECT count(*) FROM runs)").fetchone()
print(f"{steps} steps, {runs} runs in {time.perf_counter() - t:.1f}s; spans read: {spans}")
