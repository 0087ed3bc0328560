"""ProactiveBench: event streams, proposals and people's accept/reject labels.

Three shapes:
- reward data (`train_data.jsonl`): `{obs: [{time, event}], pred_task | null,
  valid, help_needed, annotation: [bool], category}`, one labelled proposal
  per line; a run of the observed events then the proposal (or silence).
- gold streams (`test_data/*.json`): `[{observation, agent_response:
  {candidate_task: [...]}, task_status}]`, one run per file.
- model traces (`eval_traces.zip`): the same stream shape per model and
  stream; each member is a run whose agent is the model's folder name.
Proposals are agent messages with `metadata.proposal`; silence is an agent
message with `metadata.silent`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from typing import Any

import orjson

from traces.importers import register
from traces.importers.base import Importer, Record, RecordError, Sample, Source, parse_time, raw_text, reject, text_of
from traces.importers.records import read_member, iter_records
from traces.model import Parsed, Rejected, Run, Step, StepKind

CATEGORIES = {"Missed-Need (MN)", "Correct-Rejection (CR)", "Correct-Detection (CD)",
              "False-Alarm (FA)"}


def proposal_step(task: Any, time=None, extra: dict | None = None) -> Step:
    if task in (None, "", []):
        return Step(kind=StepKind.AGENT, content="(no proposal)", actor="assistant",
                    started_at=time, metadata={"silent": True, **(extra or {})})
    tasks = [text_of(t) for t in task] if isinstance(task, list) else [text_of(task)]
    return Step(kind=StepKind.AGENT, content="\n".join(f"- {t}" for t in tasks) if len(tasks) > 1 else tasks[0],
                actor="assistant", started_at=time,
                metadata={"proposal": tasks, **(extra or {})})


def event_step(ev: Any, where: str) -> Step:
    if not isinstance(ev, dict) or not isinstance(ev.get("event"), str):
        raise RecordError(f"'{where}' needs an 'event' text", f"{where}.event")
    t = ev.get("time")
    return Step(kind=StepKind.OBSERVATION, content=ev["event"], actor="user",
                started_at=parse_time(t), metadata={"time": t} if t is not None else None)


def labelled_run(d: Any, source: Source) -> Run:
    if not isinstance(d, dict):
        raise RecordError("record is not a JSON object")
    obs = d.get("obs")
    if not isinstance(obs, list) or not obs:
        raise RecordError("field 'obs' should be a non-empty list of events", "obs")
    if "pred_task" not in d:
        raise RecordError("missing field 'pred_task' (null for no proposal)", "pred_task")
    valid = d.get("valid")
    if not isinstance(valid, bool):
        raise RecordError("field 'valid' should be true or false", "valid")
    ann = d.get("annotation") or []
    if not isinstance(ann, list) or not all(isinstance(a, bool) for a in ann):
        raise RecordError("field 'annotation' should be a list of true/false", "annotation")
    cat = d.get("category")
    if cat is not None and cat not in CATEGORIES:
        raise RecordError(f"unknown category {cat!r}", "category")
    steps = [event_step(e, f"obs[{i}]") for i, e in enumerate(obs)]
    steps.append(proposal_step(d.get("pred_task")))
    gold = {"valid": valid, "help_needed": d.get("help_needed"), "annotation": ann,
            "category": cat, "accepted_by": sum(ann), "annotators": len(ann)}
    return Run(
        native_id="", format="proactivebench", source=source.name, steps=tuple(steps),
        agent="proactive-agent", task=steps[-2].content[:4000] if len(steps) > 1 else None,
        outcome="accepted" if valid else "rejected", reward=1.0 if valid else 0.0, gold=gold,
    )


def stream_run(items: Any, source_name: str, agent: str | None, native: str) -> Run:
    if not isinstance(items, list):
        raise RecordError("an event stream should be a list", "")
    steps, status = [], []
    for i, it in enumerate(items):
        where = f"[{i}]"
        if not isinstance(it, dict):
            raise RecordError(f"'{where}' is not an object", where)
        steps.append(event_step(it.get("observation"), f"{where}.observation"))
        resp = it.get("agent_response")
        tasks = resp.get("candidate_task") if isinstance(resp, dict) else resp
        other = it.get("other_infomation") or it.get("other_information")
        if isinstance(other, dict) and other.get("Thoughts"):
            steps.append(Step(kind=StepKind.THOUGHT, content=text_of(other["Thoughts"]), actor="assistant"))
        extra = {"event": i}
        if "task_status" in it:
            extra["task_status"] = it.get("task_status")
            status.append(it.get("task_status"))
        steps.append(proposal_step(tasks, extra=extra))
    return Run(
        native_id=native, format="proactivebench", source=source_name, steps=tuple(steps),
        agent=agent, task=steps[0].content[:4000] if steps else None,
        gold={"task_status": status} if status else None, globally_unique_id=bool(native),
    )


def _is_stream_item(x: Any) -> bool:
    return isinstance(x, dict) and "observation" in x and "agent_response" in x


class ProactiveBenchImporter(Importer):
    name = "proactivebench"
    description = "ProactiveBench reward data, gold event streams and model traces (zip)"
    expects = 'ProactiveBench records ("obs" and "pred_task") or event streams'
    priority = 5

    def sniff(self, sample: Sample) -> bool:
        d = sample.first
        if isinstance(d, dict) and "obs" in d and "pred_task" in d:
            return True
        if sample.layout == "json_array" and _is_stream_item(d):
            return True
        if sample.layout == "zip":
            try:
                with zipfile.ZipFile(sample.source.open()) as z:
                    for n in z.namelist():
                        if n.endswith(".json"):
                            return _is_stream_item((orjson.loads(read_member(z, n)) or [None])[0])
            except (zipfile.BadZipFile, orjson.JSONDecodeError, KeyError, TypeError, IndexError):
                return False
        return False

    def parse(self, source: Source) -> Iterator[Parsed | Rejected]:
        with source.open() as f:
            head = f.read(4)
        if head == b"PK\x03\x04":
            yield from self._zip(source)
            return
        stem = source.name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        records = list(iter_records(source)) if head.lstrip()[:1] == b"[" else None
        if records and isinstance(records[0], Record) and _is_stream_item(records[0].value):
            bad = [r for r in records if isinstance(r, Rejected)]
            yield from bad
            items = [r.value for r in records if isinstance(r, Record)]
            try:
                yield Parsed((stream_run(items, source.name, "gold", f"gold/{stem}"),),
                             records=len(items), line=1)
            except RecordError as exc:
                rec = Record(items, 1, 0, orjson.dumps(items))
                yield reject(rec, exc, records=len(items))
            return
        for rec in records if records is not None else iter_records(source):
            if isinstance(rec, Rejected):
                yield rec
                continue
            try:
                yield Parsed((labelled_run(rec.value, source),), line=rec.line)
            except Exception as exc:  # noqa: BLE001 - any failure quarantines the record
                yield reject(rec, exc)

    def _zip(self, source: Source) -> Iterator[Parsed | Rejected]:
        try:
            z = zipfile.ZipFile(source.open())
        except zipfile.BadZipFile as exc:
            yield Rejected(reason=f"not a readable zip archive: {exc}", raw="")
            return
        with z:
            for name in sorted(n for n in z.namelist() if n.endswith(".json")):
                parts = name.split("/")
                agent = parts[-2] if len(parts) >= 2 else None
                raw = b""
                try:
                    raw = read_member(z, name)
                    items = orjson.loads(raw)
                    run = stream_run(items, f"{source.name}!{name}", agent, f"{agent}/{parts[-1][:-5]}")
                    yield Parsed((run,), records=1)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    yield Rejected(reason=f"unreadable archive member {name}: {exc}", raw="", field=name)
                except orjson.JSONDecodeError as exc:
                    yield Rejected(reason=f"invalid JSON in {name}: {exc}", raw=raw_text(raw), field=name)
                except RecordError as exc:
                    yield Rejected(reason=f"{name}: {exc}", raw=raw_text(raw), field=exc.field or name)


register(ProactiveBenchImporter())
