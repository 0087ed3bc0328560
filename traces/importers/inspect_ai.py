"""Inspect AI evaluation logs: `.json` documents and `.eval` zip archives.

Each sample (and epoch) is a run: its messages become steps, its scores and
target are gold labels, the eval's model and task name the agent and task.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson

from traces.importers import register
from traces.importers._chat import messages_to_steps
from traces.importers.base import as_int, Importer, Record, RecordError, Sample, Source, parse_time, raw_text, reject, text_of
from traces.importers.records import read_member, read_document
from traces.model import Parsed, Rejected, Run, Step

CORRECT, INCORRECT = {"C", "correct", 1}, {"I", "incorrect", 0}


def _outcome(scores: dict) -> tuple[str | None, float | None]:
    values = [s.get("value") for s in scores.values() if isinstance(s, dict)]
    if len(values) != 1:
        return None, None
    v = values[0]
    if isinstance(v, str) and v in CORRECT or v is True:
        return "success", 1.0
    if isinstance(v, str) and v in INCORRECT or v is False:
        return "failure", 0.0
    if isinstance(v, int | float):
        return ("success" if v >= 1 else "failure" if v <= 0 else "partial"), float(v)
    if isinstance(v, str) and v == "P":
        return "partial", 0.5
    return None, None


def sample_to_run(s: Any, header: dict, source: Source, where: str) -> Run:
    if not isinstance(s, dict):
        raise RecordError(f"'{where}' is not a sample object", where)
    if "messages" not in s:
        raise RecordError(f"sample '{where}' has no messages", f"{where}.messages")
    ev = header.get("eval") or {}
    starts: list[int] = []
    steps = messages_to_steps(s.get("messages"), f"{where}.messages", react=False, starts=starts)
    steps = _timed(steps, starts, s.get("messages") or [], s.get("events") or [])
    scores = s.get("scores") or {}
    if not isinstance(scores, dict):
        raise RecordError(f"'{where}.scores' should be an object", f"{where}.scores")
    outcome, reward = _outcome(scores)
    if s.get("error"):
        outcome = "error"
    gold = {"scores": scores} if scores else {}
    if s.get("target") not in (None, "", []):
        gold["target"] = s.get("target")
    usage = s.get("model_usage") or {}
    run_key = ev.get("eval_id") or ev.get("run_id") or source.name
    sid, epoch = s.get("id"), s.get("epoch", 1)
    inp = s.get("input")
    task = text_of(inp) if isinstance(inp, str) else text_of([m for m in inp or [] if isinstance(m, dict)][:1])
    meta = {k: v for k, v in {
        "task": ev.get("task"), "sample_id": sid, "epoch": epoch, "usage": usage or None,
        "eval_status": header.get("status"), "uuid": s.get("uuid"),
        "sample_metadata": s.get("metadata") or None, "error": s.get("error"),
        "total_time": s.get("total_time"),
    }.items() if v is not None}
    events = s.get("events") or []
    times = [parse_time(e.get("timestamp")) for e in events if isinstance(e, dict)]
    times = [t for t in times if t]
    return Run(
        native_id=f"{run_key}/{sid}/{epoch}", format="inspect", source=source.name,
        steps=tuple(steps), agent=str(ev.get("model") or "") or None, model=ev.get("model"),
        task=(f"{ev.get('task')}: " if ev.get("task") else "") + (task or "")[:4000],
        started_at=min(times) if times else parse_time(ev.get("created")),
        ended_at=max(times) if times else None,
        outcome=outcome, reward=reward, gold=gold or None, metadata=meta or None,
        globally_unique_id=bool(ev.get("eval_id") or ev.get("run_id")),
    )


def _timed(steps: list[Step], starts: list[int], messages: list, events: list) -> list[Step]:
    """Each generated message's time, tokens and stop reason, from the model event that made it;
    each tool result's time from its tool event."""
    first = {m.get("id"): starts[i] for i, m in enumerate(messages)
             if isinstance(m, dict) and m.get("id") and i < len(starts) and starts[i] < len(steps)
             and (i + 1 >= len(starts) or starts[i + 1] > starts[i])}
    by_call = {m.get("tool_call_id"): first.get(m.get("id")) for m in messages
               if isinstance(m, dict) and m.get("role") == "tool" and m.get("tool_call_id")}
    out = list(steps)
    for e in events:
        if not isinstance(e, dict):
            continue
        if e.get("event") == "model":
            o = e.get("output") or {}
            choice = (o.get("choices") or [{}])[0] if isinstance(o.get("choices"), list) else {}
            msg = choice.get("message") if isinstance(choice, dict) else None
            at = first.get(msg.get("id")) if isinstance(msg, dict) else None
            if at is None:
                continue
            u = o.get("usage") if isinstance(o.get("usage"), dict) else {}
            call = {k: v for k, v in {"model": o.get("model") or e.get("model"),
                                      "finish_reasons": [choice.get("stop_reason")] if choice.get("stop_reason")
                                      else None, "error": e.get("error")}.items() if v}
            out[at] = replace(out[at], started_at=parse_time(e.get("timestamp")),
                              ended_at=parse_time(e.get("completed")),
                              input_tokens=as_int(u.get("input_tokens")), output_tokens=as_int(u.get("output_tokens")),
                              metadata={**(out[at].metadata or {}), "llm_call": call})
        elif e.get("event") == "tool":
            at = by_call.get(e.get("id"))
            if at is not None:
                out[at] = replace(out[at], started_at=parse_time(e.get("timestamp")),
                                  ended_at=parse_time(e.get("completed")))
    return out


class InspectImporter(Importer):
    name = "inspect"
    description = "Inspect AI eval logs (.json and .eval)"
    expects = 'an Inspect log: an object with "eval" and "samples", or a .eval zip archive'
    priority = 5

    def sniff(self, sample: Sample) -> bool:
        if sample.layout == "zip":
            try:
                with zipfile.ZipFile(sample.source.open()) as z:
                    names = set(z.namelist())
                return "header.json" in names or "_journal/start.json" in names
            except zipfile.BadZipFile:
                return False
        d = sample.first
        return isinstance(d, dict) and isinstance(d.get("eval"), dict) and "version" in d

    def parse(self, source: Source) -> Iterator[Parsed | Rejected]:
        with source.open() as f:
            is_zip = f.read(4) == b"PK\x03\x04"
        yield from (self._eval_zip(source) if is_zip else self._json(source))

    def _json(self, source: Source) -> Iterator[Parsed | Rejected]:
        doc = read_document(source)
        if isinstance(doc, Rejected):
            yield doc
            return
        d = doc.value
        if not isinstance(d, dict) or not isinstance(d.get("eval"), dict):
            yield reject(doc, RecordError("not an Inspect log: missing 'eval'", "eval"))
            return
        samples = d.get("samples") or []
        if not isinstance(samples, list):
            yield reject(doc, RecordError("'samples' should be a list", "samples"))
            return
        for i, s in enumerate(samples):
            try:
                yield Parsed((sample_to_run(s, d, source, f"samples[{i}]"),), line=doc.line)
            except Exception as exc:  # noqa: BLE001 - any failure quarantines the record
                yield reject(Record(s, doc.line, doc.offset, orjson.dumps(s, default=str)), exc)

    def _eval_zip(self, source: Source) -> Iterator[Parsed | Rejected]:
        try:
            z = zipfile.ZipFile(source.open())
        except zipfile.BadZipFile as exc:
            with source.open() as f:
                yield Rejected(reason=f"not a readable .eval archive: {exc}", raw=raw_text(f.read(65536)))
            return
        with z:
            try:
                header = orjson.loads(read_member(z, "header.json"))
            except (KeyError, orjson.JSONDecodeError):
                try:
                    header = orjson.loads(read_member(z, "_journal/start.json"))
                except (KeyError, orjson.JSONDecodeError) as exc:
                    yield Rejected(reason=f"archive has no readable header.json: {exc}",
                                   raw="", field="header.json")
                    return
            for name in sorted(n for n in z.namelist() if n.startswith("samples/") and n.endswith(".json")):
                try:
                    raw = read_member(z, name)
                except (zipfile.BadZipFile, OSError, EOFError, RecordError) as exc:  # corrupt or too big
                    yield Rejected(reason=f"unreadable archive member {name}: {exc}", raw="", field=name)
                    continue
                rec = Record(None, None, None, raw)
                try:
                    s = orjson.loads(raw)
                    yield Parsed((sample_to_run(s, header, source, name),))
                except orjson.JSONDecodeError as exc:
                    yield Rejected(reason=f"invalid JSON in {name}: {exc}", raw=raw_text(raw), field=name)
                except Exception as exc:  # noqa: BLE001 - any failure quarantines the record
                    yield reject(rec, exc)


register(InspectImporter())
