"""The data model shared by importers, the store and everything downstream.

Plain frozen dataclasses: importers build them, the store persists them, the
rest of Libra reads them back. Pydantic lives only at trust boundaries
(file formats, LLM output), never here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from enum import StrEnum
from collections.abc import Callable
from typing import Any

import orjson


class StepKind(StrEnum):
    USER = "user_message"
    AGENT = "agent_message"
    THOUGHT = "thought"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    OBSERVATION = "observation"
    SYSTEM = "system"


STEP_KINDS = frozenset(k.value for k in StepKind)


@dataclass(frozen=True, slots=True, init=False)
class Step:
    kind: str
    content: str = ""
    actor: str | None = None
    tool_name: str | None = None
    tool_args: Any = None
    span_id: str | None = None
    parent_id: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    is_error: bool = False
    metadata: dict[str, Any] | None = None

    # Importers build a Step per record, millions per ingest. The generated __init__ of a
    # frozen dataclass calls object.__setattr__ once per field; setting the slots directly
    # makes the same object in half the time.
    def __init__(self, kind: str, content: str = "", actor: str | None = None,
                 tool_name: str | None = None, tool_args: Any = None, span_id: str | None = None,
                 parent_id: str | None = None, started_at: datetime | None = None,
                 ended_at: datetime | None = None, input_tokens: int | None = None,
                 output_tokens: int | None = None, is_error: bool = False,
                 metadata: dict[str, Any] | None = None) -> None:
        s = _STEP_SETTERS
        s[0](self, kind), s[1](self, content), s[2](self, actor), s[3](self, tool_name)
        s[4](self, tool_args), s[5](self, span_id), s[6](self, parent_id), s[7](self, started_at)
        s[8](self, ended_at), s[9](self, input_tokens), s[10](self, output_tokens)
        s[11](self, is_error), s[12](self, metadata)

    def with_metadata(self, metadata: dict[str, Any] | None) -> Step:
        """This step with other metadata: `dataclasses.replace`, without its per-field checks
        (an importer does it for every model call it reads, a third of a million per 1M spans)."""
        return Step(self.kind, self.content, self.actor, self.tool_name, self.tool_args, self.span_id,
                    self.parent_id, self.started_at, self.ended_at, self.input_tokens, self.output_tokens,
                    self.is_error, metadata)


_STEP_SETTERS = tuple(Step.__dict__[f].__set__ for f in Step.__slots__)


@dataclass(frozen=True, slots=True)
class Feedback:
    """A person's free-text note on a run, optionally anchored to some of its steps.

    One shape everywhere: as an importer reads it (no id or run yet), as the
    store keeps it, and as saved in the app but not yet applied (`pending`).
    """

    author: str
    text: str
    steps: tuple[int, ...] = ()
    rating: float | None = None
    origin: str = "imported"
    created_at: datetime | None = None
    metadata: dict[str, Any] | None = None
    feedback_id: str | None = None
    run_id: str | None = None
    edited_at: datetime | None = None
    pending: bool = False

    @property
    def focus(self) -> str | None:
        """The actor the note is about, when a run has several (Sotopia's two agents)."""
        return (self.metadata or {}).get("agent")


@dataclass(frozen=True, slots=True)
class Run:
    """One agent run. `native_id` is the id the source format gives it."""

    native_id: str
    format: str
    source: str
    steps: tuple[Step, ...] = ()
    agent: str | None = None
    model: str | None = None
    task: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    reward: float | None = None
    gold: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    feedback: tuple[Feedback, ...] = ()
    # Whether native_id identifies this run across files (a trace id, a uuid).
    # When it does not, the run is identified by its content instead.
    globally_unique_id: bool = False

    def content_hash(self) -> str:
        return run_content_hash(self)

    def run_id(self, content_hash: str | None = None) -> str:
        if self.globally_unique_id and self.native_id:
            return f"{self.format}:{self.native_id}"
        return f"{self.format}:h{(content_hash or self.content_hash())[:20]}"


_ACTING = frozenset({StepKind.AGENT.value, StepKind.TOOL_CALL.value, StepKind.THOUGHT.value})


def agents_of(run: Run) -> tuple[str, ...]:
    """Who a run's per-agent verdicts can be about: the agents the source names, else the actors that acted.

    Sotopia names an episode's two agents; elsewhere an agent is an actor that
    spoke, thought or called a tool (a tool's or a person's turn makes no one
    an agent). A run with one agent or none is judged as a whole.
    """
    named = (run.metadata or {}).get("agents")
    if isinstance(named, list) and named and all(isinstance(a, str) and a for a in named):
        return tuple(dict.fromkeys(named))
    return tuple(dict.fromkeys(s.actor for s in run.steps if s.actor and s.kind in _ACTING))


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record an importer could not turn into runs; kept verbatim with its reason."""

    reason: str
    raw: str
    line: int | None = None
    offset: int | None = None
    field: str | None = None
    records: int = 1


@dataclass(frozen=True, slots=True)
class Parsed:
    """What an importer yields: runs built from `records` input records."""

    runs: tuple[Run, ...]
    records: int = 1
    line: int | None = None


@dataclass(frozen=True, slots=True)
class FileTally:
    """One input's account: records read = stored (in runs, new or known) + quarantined."""

    source: str
    format: str | None
    encoding: str | None
    records: int
    stored: int
    quarantined: int


@dataclass(slots=True)
class IngestSummary:
    files: int = 0
    records: int = 0
    runs_added: int = 0
    runs_updated: int = 0
    duplicates: int = 0
    steps: int = 0
    feedback: int = 0
    quarantined: int = 0
    unrecognised_files: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    formats: dict[str, int] = field(default_factory=dict)
    per_file: list[FileTally] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.quarantined == 0 and not self.unrecognised_files

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "runs_added": self.runs_added,
            "runs_updated": self.runs_updated,
            "duplicates": self.duplicates,
            "steps": self.steps,
            "feedback": self.feedback,
            "quarantined": self.quarantined,
            "unrecognised_files": list(self.unrecognised_files),
            "reasons": dict(self.reasons),
            "formats": dict(self.formats),
            "per_file": [{"source": t.source, "format": t.format, "encoding": t.encoding, "records": t.records,
                          "stored": t.stored, "quarantined": t.quarantined} for t in self.per_file],
        }


def _tame(value: Any) -> Any:
    """A value orjson can write: integers past 64 bits (which JSON engines lose) become text.

    Only called once orjson has refused a value, so the common path pays nothing.
    """
    if type(value) is int and not -(2**63) <= value < 2**64:
        return str(value)
    if isinstance(value, dict):
        return {k: _tame(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_tame(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _tame(getattr(value, f.name)) for f in fields(value)}
    return value


def _orjson(value: Any, option: int, default: Callable[[Any], Any] | None) -> bytes:
    try:
        return orjson.dumps(value, option=option, default=default)
    except TypeError:
        return orjson.dumps(_tame(value), option=option, default=default)


def dumps(value: Any) -> str:
    """Canonical JSON text (sorted keys) used for storage and hashing."""
    return _orjson(value, orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, str).decode()


_HASH_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _default(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value._value_  # the plain attribute: .value is a descriptor, called per step
    return str(value)


def run_content_hash(run: Run) -> str:
    """Hash of everything that makes a run what it is, independent of where it was read.

    The source path is left out on purpose so that the same log read from two
    places is recognised as one run. Steps are serialised in one pass (orjson
    knows dataclasses and datetimes), which keeps hashing off the ingest's
    critical path.
    """
    head = (
        run.format, run.native_id, run.agent, run.model, run.task, run.started_at,
        run.ended_at, run.outcome, run.reward, run.gold, run.metadata,
    )
    fb = [(f.author, f.text, f.steps, f.rating, f.metadata) for f in run.feedback]
    blob = _orjson((head, run.steps, fb), _HASH_OPTS, _default)
    return hashlib.sha256(blob).hexdigest()
