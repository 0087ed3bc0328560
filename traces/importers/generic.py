"""Libra's own generic JSONL format, for agents that have no standard log format.

One run per line (a JSON array of runs also works):

    {"run_id": "r-42", "agent": "support-bot", "model": "claude-sonnet-4-5",
     "task": "Refund order 1234", "started_at": "2026-01-05T10:00:00Z",
     "ended_at": "2026-01-05T10:01:10Z", "outcome": "success", "reward": 1.0,
     "gold": {...}, "metadata": {...},
     "steps": [
       {"kind": "user_message", "content": "Please refund order 1234"},
       {"kind": "thought", "content": "I should look the order up first"},
       {"kind": "tool_call", "tool_name": "get_order", "tool_args": {"id": 1234}},
       {"kind": "tool_result", "tool_name": "get_order", "content": "{...}", "error": false},
       {"kind": "agent_message", "content": "Done: refunded.", "actor": "support-bot",
        "input_tokens": 812, "output_tokens": 40}
     ],
     "feedback": [{"author": "ana", "text": "Looked the order up before refunding.",
                   "steps": [2, 3], "rating": 5}]}

Step kinds: user_message, agent_message, thought, tool_call, tool_result,
observation, system. Optional step fields: actor, tool_name, tool_args, span_id,
parent_id, started_at, ended_at (ISO 8601 or epoch), input_tokens,
output_tokens, error, metadata. `run_id` is required and must be unique to
the run (it identifies the run when the same id is ingested again).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from traces.importers import register
from traces.importers.base import Importer, RecordError, Sample, Source, in_shard, parse_time, reject, text_of
from traces.importers.records import iter_records
from traces.model import STEP_KINDS, Feedback, Parsed, Rejected, Run, Step

_STEP_FIELDS = {
    "kind", "content", "actor", "tool_name", "tool_args", "span_id", "parent_id", "started_at",
    "ended_at", "input_tokens", "output_tokens", "error", "metadata",
}


def _opt_str(d: dict, key: str, where: str) -> str | None:
    v = d.get(key)
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)
    raise RecordError(f"field '{where}.{key}' should be a string", f"{where}.{key}")


def _opt_int(d: dict, key: str, where: str) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise RecordError(f"field '{where}.{key}' should be an integer", f"{where}.{key}")
    if v < 0:
        raise RecordError(f"field '{where}.{key}' should not be negative", f"{where}.{key}")
    return v


def _opt_time(d: dict, key: str, where: str):
    v = d.get(key)
    if v is None:
        return None
    t = parse_time(v)
    if t is None:
        raise RecordError(
            f"field '{where}.{key}' is not a timestamp (ISO 8601 or epoch): {v!r}"[:200],
            f"{where}.{key}",
        )
    return t


_fromiso = datetime.fromisoformat


def _fast_time(v: Any) -> datetime | None:
    """Naive ISO timestamps, the overwhelmingly common case, without the general parser."""
    if type(v) is str and len(v) >= 19 and v[4] == "-" and v[-1] != "Z" and "+" not in v[19:]:
        try:
            t = _fromiso(v)
        except ValueError:
            return None
        return t if t.tzinfo is None else None
    return None


def _opt_obj(d: dict, key: str, where: str) -> dict | None:
    v = d.get(key)
    if v is None or isinstance(v, dict):
        return v or None
    raise RecordError(f"field '{where}.{key}' should be an object", f"{where}.{key}")


def parse_step(s: Any, where: str) -> Step:
    if not isinstance(s, dict):
        raise RecordError(f"'{where}' should be an object", where)
    kind = s.get("kind")
    if not isinstance(kind, str) or kind not in STEP_KINDS:
        raise RecordError(
            f"'{where}.kind' must be one of {', '.join(sorted(STEP_KINDS))}; got {kind!r}"[:300],
            f"{where}.kind",
        )
    err = s.get("error", False)
    if not isinstance(err, bool):
        raise RecordError(f"field '{where}.error' should be true or false", f"{where}.error")
    content = s.get("content")
    # Fast paths for well-formed values; the helpers produce the error messages otherwise.
    get = s.get
    actor, tool, span, parent = get("actor"), get("tool_name"), get("span_id"), get("parent_id")
    if not (actor is None or type(actor) is str):
        actor = _opt_str(s, "actor", where)
    if not (tool is None or type(tool) is str):
        tool = _opt_str(s, "tool_name", where)
    if not (span is None or type(span) is str):
        span = _opt_str(s, "span_id", where)
    if not (parent is None or type(parent) is str):
        parent = _opt_str(s, "parent_id", where)
    tin, tout = get("input_tokens"), get("output_tokens")
    if not (tin is None or (type(tin) is int and tin >= 0)):
        tin = _opt_int(s, "input_tokens", where)
    if not (tout is None or (type(tout) is int and tout >= 0)):
        tout = _opt_int(s, "output_tokens", where)
    meta = get("metadata")
    if meta is not None:
        meta = _opt_obj(s, "metadata", where)
    if not isinstance(content, str):
        content = text_of(content)
    start = _fast_time(get("started_at")) or _opt_time(s, "started_at", where)
    end = _fast_time(get("ended_at")) or _opt_time(s, "ended_at", where)
    # Positional, in field order: this runs once per step of every generic ingest.
    return Step(kind, content, actor, tool, get("tool_args"), span, parent, start, end, tin, tout, err, meta)


def parse_feedback(f: Any, where: str, n_steps: int) -> Feedback:
    if not isinstance(f, dict):
        raise RecordError(f"'{where}' should be an object", where)
    text = f.get("text")
    if not isinstance(text, str) or not text.strip():
        raise RecordError(f"'{where}.text' should be non-empty text", f"{where}.text")
    author = f.get("author")
    if not isinstance(author, str) or not author:
        raise RecordError(f"'{where}.author' should be a name", f"{where}.author")
    steps = f.get("steps") or []
    if not isinstance(steps, list) or not all(isinstance(i, int) for i in steps):
        raise RecordError(f"'{where}.steps' should be a list of step indices", f"{where}.steps")
    bad = [i for i in steps if i < 0 or i >= n_steps]
    if bad:
        raise RecordError(
            f"'{where}.steps' refers to steps {bad} but the run has {n_steps}", f"{where}.steps"
        )
    rating = f.get("rating")
    if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int | float)):
        raise RecordError(f"'{where}.rating' should be a number", f"{where}.rating")
    return Feedback(
        author=author, text=text, steps=tuple(sorted(set(steps))),
        rating=float(rating) if rating is not None else None,
        created_at=_opt_time(f, "created_at", where), metadata=_opt_obj(f, "metadata", where),
    )


def parse_run(d: Any, source: Source, fmt: str) -> Run:
    if not isinstance(d, dict):
        raise RecordError("record is not a JSON object")
    run_id = d.get("run_id")
    if not isinstance(run_id, str | int) or isinstance(run_id, bool) or run_id == "":
        raise RecordError("missing required field 'run_id'", "run_id")
    raw_steps = d.get("steps")
    if not isinstance(raw_steps, list):
        raise RecordError("field 'steps' should be a list", "steps")
    steps = tuple(parse_step(s, f"steps[{i}]") for i, s in enumerate(raw_steps))
    raw_fb = d.get("feedback") or []
    if not isinstance(raw_fb, list):
        raise RecordError("field 'feedback' should be a list", "feedback")
    feedback = tuple(parse_feedback(f, f"feedback[{i}]", len(steps)) for i, f in enumerate(raw_fb))
    reward = d.get("reward")
    if reward is not None and (isinstance(reward, bool) or not isinstance(reward, int | float)):
        raise RecordError("field 'reward' should be a number", "reward")
    return Run(
        native_id=str(run_id), format=fmt, source=source.name, steps=steps,
        agent=_opt_str(d, "agent", "run"), model=_opt_str(d, "model", "run"),
        task=_opt_str(d, "task", "run"), started_at=_opt_time(d, "started_at", "run"),
        ended_at=_opt_time(d, "ended_at", "run"), outcome=_opt_str(d, "outcome", "run"),
        reward=float(reward) if reward is not None else None,
        gold=_opt_obj(d, "gold", "run"), metadata=_opt_obj(d, "metadata", "run"),
        feedback=feedback, globally_unique_id=True,
    )


class GenericImporter(Importer):
    name = "libra"
    description = "Libra generic JSONL: one run per line with typed steps and feedback"
    expects = 'an object with "run_id" and a "steps" list of {kind, content}'
    priority = 10
    shardable = True

    def sniff(self, sample: Sample) -> bool:
        d = sample.first
        if not isinstance(d, dict) or "run_id" not in d or not isinstance(d.get("steps"), list):
            return False
        steps = d["steps"]
        return not steps or (isinstance(steps[0], dict) and steps[0].get("kind") in STEP_KINDS)

    def parse(self, source: Source, shard: tuple[int, int] | None = None) -> Iterator[Parsed | Rejected]:
        skip = None
        if shard is not None:
            def skip(line: bytes) -> bool:
                key = _leading_run_id(line)
                return key is not None and not in_shard(key, shard)
        for rec in iter_records(source, skip=skip):
            if isinstance(rec, Rejected):
                if in_shard(None, shard):
                    yield rec
                continue
            if shard is not None:
                key = rec.value.get("run_id") if isinstance(rec.value, dict) else None
                if not in_shard(key if isinstance(key, str | int) and key != "" else None, shard):
                    continue
            try:
                yield Parsed((parse_run(rec.value, source, self.name),), line=rec.line)
            except Exception as exc:  # noqa: BLE001 - any failure quarantines the record
                yield reject(rec, exc)


_LEAD = b'{"run_id":"'


def _leading_run_id(line: bytes) -> str | None:
    """The run id of a line that starts with it (as Libra writes them), without parsing the line."""
    if not line.startswith(_LEAD):
        return None
    end = line.find(b'"', len(_LEAD))
    raw = line[len(_LEAD):end]
    if end < 0 or b"\\" in raw or not raw:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def run_to_record(run: Run) -> dict:
    """The generic-format record for a run (used by export and the demo generator)."""

    def iso(t):
        return t.isoformat() if t else None

    def step(s: Step) -> dict:
        out: dict[str, Any] = {"kind": s.kind, "content": s.content}
        for k in ("actor", "tool_name", "tool_args", "span_id", "parent_id",
                  "input_tokens", "output_tokens", "metadata"):
            v = getattr(s, k)
            if v is not None:
                out[k] = v
        if s.started_at:
            out["started_at"] = iso(s.started_at)
        if s.ended_at:
            out["ended_at"] = iso(s.ended_at)
        if s.is_error:
            out["error"] = True
        return out

    rec: dict[str, Any] = {"run_id": run.native_id or run.run_id()}
    for k in ("agent", "model", "task", "outcome", "reward", "gold", "metadata"):
        v = getattr(run, k)
        if v is not None:
            rec[k] = v
    if run.started_at:
        rec["started_at"] = iso(run.started_at)
    if run.ended_at:
        rec["ended_at"] = iso(run.ended_at)
    rec["steps"] = [step(s) for s in run.steps]
    if run.feedback:
        rec["feedback"] = [
            {k: v for k, v in {
                "author": f.author, "text": f.text, "steps": list(f.steps) or None,
                "rating": f.rating, "metadata": f.metadata,
                "created_at": iso(f.created_at),
            }.items() if v is not None}
            for f in run.feedback
        ]
    return rec


register(GenericImporter())
