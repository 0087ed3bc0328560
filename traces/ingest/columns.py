"""Parsed runs as the Arrow tables the store's tables take: the hot half of ingest that is pure Python.

Its own module, importing pyarrow and nothing of the store, because it runs in
the parsing processes (`traces.ingest.shard_worker`): each would otherwise load
DuckDB for nothing, ~60 MB of resident memory and ~0.1 CPU-s per process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter

import pyarrow as pa

from traces.model import Run, Step, StepKind, dumps

RUN_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("native_id", pa.string()), ("source", pa.string()),
    ("format", pa.string()), ("agent", pa.string()), ("model", pa.string()),
    ("task", pa.string()), ("started_at", pa.timestamp("us")), ("ended_at", pa.timestamp("us")),
    ("outcome", pa.string()), ("reward", pa.float64()), ("gold", pa.string()),
    ("metadata", pa.string()), ("content_hash", pa.string()), ("n_steps", pa.int32()),
    ("ingested_at", pa.timestamp("us")),
])
STEP_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("idx", pa.int32()), ("kind", pa.string()), ("actor", pa.string()),
    ("tool_name", pa.string()), ("tool_args", pa.string()), ("content", pa.string()),
    ("span_id", pa.string()), ("parent_id", pa.string()), ("started_at", pa.timestamp("us")),
    ("ended_at", pa.timestamp("us")), ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()), ("is_error", pa.bool_()), ("metadata", pa.string()),
])
FEEDBACK_SCHEMA = pa.schema([
    ("feedback_id", pa.string()), ("run_id", pa.string()), ("steps", pa.list_(pa.int32())),
    ("author", pa.string()), ("text", pa.string()), ("rating", pa.float64()),
    ("origin", pa.string()), ("created_at", pa.timestamp("us")),
    ("edited_at", pa.timestamp("us")), ("deleted_at", pa.timestamp("us")),
    ("metadata", pa.string()),
])


@dataclass(frozen=True)
class Batch:
    """Runs ready to insert: one row per run (unique ids), their steps and feedback."""

    runs: pa.Table
    steps: pa.Table
    feedback: pa.Table
    duplicates: int = 0  # repeats dropped inside the batch


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _str(v):
    return None if v is None else v if isinstance(v, str) else str(v)


def _time(v):
    return v if v is None or isinstance(v, datetime) else None


def _num(v):
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 else None


def _opt_dumps(v):
    return None if v is None else dumps(v)


def prepare(runs: list[Run], now: datetime | None = None) -> Batch:
    """Arrow tables for runs, keeping the last version of each id and dropping repeats."""
    now = now or utcnow()
    by_id: dict[str, tuple[Run, str, str]] = {}
    seen_hash: set[str] = set()
    dup = 0
    for run in runs:
        h = run.content_hash()
        if h in seen_hash:
            dup += 1
            continue
        seen_hash.add(h)
        rid = run.run_id(h)
        if rid in by_id:
            dup += 1
        by_id[rid] = (run, rid, h)
    todo = list(by_id.values())
    rows = []  # one tuple per run, in RUN_SCHEMA's order
    fc = {f.name: [] for f in FEEDBACK_SCHEMA}
    for run, rid, h in todo:
        started, ended = _time(run.started_at), _time(run.ended_at)
        if started is None:  # from the steps when the run does not say
            started = min((t for t in (_time(s.started_at) for s in run.steps) if t is not None), default=None)
        if ended is None:
            ended = max((t for t in (_time(s.ended_at) or _time(s.started_at) for s in run.steps)
                         if t is not None), default=None)
        rows.append((
            rid, _str(run.native_id), _str(run.source), _str(run.format), _str(run.agent),
            _str(run.model), _str(run.task), started, ended, _str(run.outcome), _num(run.reward),
            _opt_dumps(run.gold), _opt_dumps(run.metadata), h, len(run.steps), now,
        ))
        for j, f in enumerate(run.feedback):
            fid = hashlib.sha256(dumps([rid, j, f.author, f.text, list(f.steps)]).encode()).hexdigest()[:24]
            for k, v in (
                ("feedback_id", fid), ("run_id", rid), ("steps", list(f.steps)),
                ("author", _str(f.author)), ("text", _str(f.text)), ("rating", _num(f.rating)),
                ("origin", f.origin), ("created_at", f.created_at or now),
                ("edited_at", None), ("deleted_at", None), ("metadata", _opt_dumps(f.metadata)),
            ):
                fc[k].append(v)
    columns = zip(*rows, strict=True) if rows else ([] for _ in RUN_SCHEMA)
    rc = {f.name: pa.array(col, f.type) for f, col in zip(RUN_SCHEMA, columns, strict=True)}
    return Batch(pa.table(rc, schema=RUN_SCHEMA), _step_table(todo),
                 pa.table(fc, schema=FEEDBACK_SCHEMA), dup)


_NONE = type(None)
_STR, _TIME, _INT = frozenset({str, _NONE}), frozenset({datetime, _NONE}), frozenset({int, _NONE})
_KIND = _STR | {StepKind}
_STEP_GETTERS = tuple((name, attrgetter(name)) for name in Step.__slots__)


def _column(values: tuple, arrow_type: pa.DataType, ok: frozenset, fix) -> pa.Array:
    # Importers should hand over well-typed values; the writer makes sure, because one
    # odd value would otherwise fail the whole batch. Checking the types present is one
    # pass in C, so only a column that holds an odd value is converted value by value.
    if not set(map(type, values)) <= ok:
        values = [v if type(v) in ok else fix(v) for v in values]
    try:
        return pa.array(values, arrow_type)
    except OverflowError:  # an integer past 64 bits, which no column can hold
        return pa.array([None if type(v) is int and not -(2**63) <= v < 2**63 else v for v in values],
                        arrow_type)


def _step_table(todo: list[tuple[Run, str, str]]) -> pa.Table:
    """The steps of the runs as one Arrow table; ingest's hot path, so column by column."""
    steps = [st for run, _, _ in todo for st in run.steps]
    if not steps:
        return STEP_SCHEMA.empty_table()
    c = {name: list(map(get, steps)) for name, get in _STEP_GETTERS}
    cols = {
        "run_id": pa.array([rid for run, rid, _ in todo for _ in run.steps], pa.string()),
        "idx": pa.array([i for run, _, _ in todo for i in range(len(run.steps))], pa.int32()),
        # StepKind members are str subclasses holding their value, which Arrow reads as is
        "kind": _column(c["kind"], pa.string(), _KIND, str),
        "is_error": _column(c["is_error"], pa.bool_(), frozenset({bool}), bool),
        "tool_args": pa.array([None if v is None else dumps(v) for v in c["tool_args"]], pa.string()),
        "metadata": pa.array([None if v is None else dumps(v) for v in c["metadata"]], pa.string()),
    }
    for name in ("content", "actor", "tool_name", "span_id", "parent_id"):
        cols[name] = _column(c[name], pa.string(), _STR, str)
    for name in ("started_at", "ended_at"):
        cols[name] = _column(c[name], pa.timestamp("us"), _TIME, _time)
    for name in ("input_tokens", "output_tokens"):
        cols[name] = _column(c[name], pa.int64(), _INT, _int)
    return pa.table(cols, schema=STEP_SCHEMA)
