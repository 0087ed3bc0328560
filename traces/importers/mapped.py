"""A declarative mapping for JSON and JSONL results files that match no importer.

`libra ingest FILE --map mapping.yaml`, where a few lines of YAML say where things live,
as JMESPath expressions (the `jmespath` library) evaluated on each record:

    records: results            # optional: the list of runs inside each record or document
    id: task_id
    messages: trajectory        # the list of messages of a run
    role: from                  # in each message (default "role")
    content: value              # in each message (default "content")
    roles: {human: user, gpt: assistant, observation: tool}
    tool_calls: tool_calls      # in each message: OpenAI, Anthropic or {id, name, arguments} shapes
    reward: score.value
    labels: {resolved: resolved, target: expected}
    task: prompt
    agent: model

The mapping is checked when it is read (unknown keys, expressions that do not
parse: named with the key) and against the file's first record before anything
is written (an expression that finds nothing there is named, with the keys the
record has). Not registered for detection: it is used only when asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from traces.importers._chat import first_user_text, messages_to_steps
from traces.importers.base import Importer, Record, RecordError, Sample, Source, reject
from traces.importers.records import iter_records
from traces.model import Parsed, Rejected, Run

STANDARD_ROLES = ("user", "assistant", "system", "tool", "developer")


class MappingError(ValueError):
    """A mapping that cannot be used: its file and key, and what is wrong."""


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = "mapped"  # the format name the runs are stored under
    records: str | None = None
    id: str | None = None
    messages: str
    role: str = "role"
    content: str = "content"
    name: str | None = "name"
    tool_calls: str | None = "tool_calls"
    tool_call_id: str | None = "tool_call_id"
    roles: dict[str, str] = Field(default_factory=dict)
    reward: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    task: str | None = None
    agent: str | None = None
    model: str | None = None

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: dict[str, str]) -> dict[str, str]:
        bad = {k: r for k, r in v.items() if r not in STANDARD_ROLES}
        if bad:
            raise ValueError(f"roles must map to one of {', '.join(STANDARD_ROLES)}; not {bad}")
        return v

    def expressions(self) -> dict[str, str]:
        out = {k: getattr(self, k) for k in ("records", "id", "messages", "role", "content", "name", "tool_calls",
                                              "tool_call_id", "reward", "task", "agent", "model")}
        out.update({f"labels.{k}": v for k, v in self.labels.items()})
        return {k: v for k, v in out.items() if v}


def load_mapping(path: str | Path) -> tuple[Mapping, dict[str, Any]]:
    """The mapping and its compiled expressions, or MappingError naming the file and key."""
    import jmespath
    from jmespath.exceptions import ParseError

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"{p}: cannot read the mapping: {exc}") from None
    if not isinstance(raw, dict):
        raise MappingError(f"{p}: a mapping is a YAML object of keys (messages, role, content, ...)")
    try:
        m = Mapping.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise MappingError(f"{p}: '{'.'.join(str(x) for x in e['loc'])}': {e['msg']}") from None
    compiled = {}
    for key, expr in m.expressions().items():
        try:
            compiled[key] = jmespath.compile(expr)
        except ParseError as exc:
            raise MappingError(f"{p}: '{key}': {expr!r} is not a JMESPath expression ({exc})") from None
    return m, compiled


class MappedImporter(Importer):
    name = "mapped"
    description = "any JSON/JSONL results file, by a mapping (libra ingest --map)"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.mapping, self.expr = load_mapping(path)

    def sniff(self, sample: Sample) -> bool:
        return True  # chosen explicitly; `check` says whether the file fits

    def _get(self, key: str, value: Any) -> Any:
        e = self.expr.get(key)
        return e.search(value) if e is not None else None

    def check(self, source: Source, sample: Sample) -> None:
        """The mapping against the file's first record; MappingError says which key finds nothing."""
        first = sample.first
        if first is None:
            raise MappingError(f"{source.name}: no JSON record to map ({sample.problem or sample.layout})")
        item = first
        if "records" in self.expr:
            items = self._get("records", first)
            if not isinstance(items, list) or not items:
                raise MappingError(f"{self.path}: 'records': {self.mapping.records!r} finds no list in the first "
                                   f"record of {source.name} (its keys: {_keys(first)})")
            item = items[0]
        msgs = self._get("messages", item)
        if not isinstance(msgs, list) or not msgs:
            raise MappingError(f"{self.path}: 'messages': {self.mapping.messages!r} finds no list of messages in "
                               f"the first run of {source.name} (its keys: {_keys(item)})")
        m0 = next((m for m in msgs if isinstance(m, dict)), None)
        if m0 is None or not isinstance(self._get("role", m0), str):
            raise MappingError(f"{self.path}: 'role': {self.mapping.role!r} finds no role in the first message of "
                               f"{source.name} (its keys: {_keys(m0)})")

    def parse(self, source: Source) -> Iterator[Parsed | Rejected]:
        for rec in iter_records(source):
            if isinstance(rec, Rejected):
                yield rec
                continue
            items = self._get("records", rec.value) if "records" in self.expr else [rec.value]
            if not isinstance(items, list):
                yield reject(rec, RecordError(f"'records' ({self.mapping.records}) finds no list here", "records"))
                continue
            for i, item in enumerate(items):
                try:
                    yield Parsed((self.run_of(item, source, i if "records" in self.expr else None),),
                                 line=rec.line)
                except Exception as exc:  # noqa: BLE001 - any failure quarantines the record
                    yield reject(Record(item, rec.line, rec.offset, rec.raw), exc)

    def _message(self, m: Any, where: str) -> dict:
        if not isinstance(m, dict):
            raise RecordError(f"message at '{where}' is not an object", where)
        role = self._get("role", m)
        if not isinstance(role, str):
            raise RecordError(f"'role' ({self.mapping.role}) finds no role in '{where}'", f"{where}.role")
        out = {"role": self.mapping.roles.get(role, role), "content": self._get("content", m)}
        for key in ("name", "tool_calls", "tool_call_id"):
            v = self._get(key, m)
            if v is not None:
                out[key] = v
        return out

    def run_of(self, item: Any, source: Source, index: int | None) -> Run:
        msgs = self._get("messages", item)
        if not isinstance(msgs, list):
            raise RecordError(f"'messages' ({self.mapping.messages}) finds no list of messages", "messages")
        steps = messages_to_steps([self._message(m, f"messages[{i}]") for i, m in enumerate(msgs)], "messages")
        native = self._get("id", item)
        reward = self._get("reward", item)
        if reward is not None and (isinstance(reward, bool) or not isinstance(reward, int | float)):
            raise RecordError(f"'reward' ({self.mapping.reward}) is {reward!r}, not a number", "reward")
        gold = {k: v for k in self.mapping.labels if (v := self._get(f"labels.{k}", item)) is not None}
        if reward is not None:
            gold["reward"] = reward
        task, agent, model = (self._get(k, item) for k in ("task", "agent", "model"))
        return Run(
            native_id=str(native) if native is not None else "", format=self.mapping.format, source=source.name,
            steps=tuple(steps), agent=str(agent or model or "") or None, model=str(model) if model else None,
            task=str(task)[:4000] if task else first_user_text(steps), reward=float(reward) if reward is not None
            else None, outcome=None if reward is None else "success" if reward >= 1 else "failure" if reward <= 0
            else "partial", gold=gold or None, globally_unique_id=False,
        )


def _keys(v: Any) -> str:
    return ", ".join(list(v)[:15]) if isinstance(v, dict) else type(v).__name__
