"""Runs out as Agent Data Protocol trajectories, validated against ADP's schema.

ADP (the agent-data-protocol project) standardises trajectories as
`{id, content, details}`: observations (text, web, image) and actions
(message, api, code), each with its `class_`; an action's `description` holds
the reasoning before it. The models below restate its pydantic schema
(`schema/` in that project, documented in its SCHEMA.md) so an export is checked
here, offline, before anyone trains on it: unknown fields and classes are errors,
as there.

Mapping: user and system turns → text_observation (source user; a system turn
named "system"); tool results and environment observations → text_observation
(source environment, named by the tool); agent messages → message_action;
tool calls → api_action (a `code:LANG` tool, as the ADP importer reads code
actions, → code_action); a thought becomes the `description` of the action it
precedes. Libra's own facts (run id, agent, outcome, reward, gold, metadata, metric
verdicts, people's notes) go in `details`, which ADP keeps for dataset metadata.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from traces.model import Run, Step, StepKind


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextObservation(_Item):
    class_: Literal["text_observation"]
    content: str
    source: Literal["user", "agent", "environment"]
    name: str | None = None


class ImageObservation(_Item):
    class_: Literal["image_observation"]
    content: str  # where the image is
    annotations: list[Any] = Field(default_factory=list)
    source: Literal["user", "agent", "environment"] = "environment"


class WebObservation(_Item):
    class_: Literal["web_observation"]
    html: str | None = None
    axtree: str | None = None
    url: str | None = None
    image_observation: ImageObservation | None = None
    viewport_size: tuple[int, int] | list[int] | None = None


class MessageAction(_Item):
    class_: Literal["message_action"]
    content: str
    description: str | None = None


class ApiAction(_Item):
    class_: Literal["api_action"]
    function: str = Field(min_length=1)
    kwargs: dict[str, Any]
    description: str | None = None


class CodeAction(_Item):
    class_: Literal["code_action"]
    language: str = Field(min_length=1)
    content: str
    description: str | None = None


ContentItem = Annotated[TextObservation | WebObservation | ImageObservation | MessageAction | ApiAction | CodeAction,
                        Field(discriminator="class_")]


class Trajectory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    content: list[ContentItem]
    details: dict[str, Any] = Field(default_factory=dict)


TRAJECTORY = TypeAdapter(Trajectory)


def _observation(step: Step) -> dict[str, Any]:
    if step.kind == StepKind.USER:
        return {"class_": "text_observation", "content": step.content, "source": "user",
                **({"name": step.actor} if step.actor else {})}
    if step.kind == StepKind.SYSTEM:
        return {"class_": "text_observation", "content": step.content, "source": "user", "name": "system"}
    name = step.tool_name or step.actor
    return {"class_": "text_observation", "content": step.content, "source": "environment",
            **({"name": name} if name else {})}


def _action(step: Step, thought: str) -> dict[str, Any]:
    if step.kind == StepKind.TOOL_CALL and (step.tool_name or "").startswith("code:"):
        args = step.tool_args if isinstance(step.tool_args, dict) else {}
        code = args.get("code") if isinstance(args.get("code"), str) else step.content
        return {"class_": "code_action", "language": (step.tool_name or "code:code")[5:] or "code",
                "content": code or "", "description": thought}
    if step.kind == StepKind.TOOL_CALL:
        args = step.tool_args if isinstance(step.tool_args, dict) else (
            {} if step.tool_args is None else {"input": step.tool_args})
        if not args and step.content:
            args = {"input": step.content}
        return {"class_": "api_action", "function": step.tool_name or "tool", "kwargs": args, "description": thought}
    return {"class_": "message_action", "content": step.content, "description": thought}


def trajectory(run: Run, run_id: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """One run as an ADP trajectory (a plain dict, validated by `validate`)."""
    content: list[dict[str, Any]] = []
    thoughts: list[str] = []
    for step in run.steps:
        if step.kind == StepKind.THOUGHT:
            thoughts.append(step.content)
        elif step.kind in (StepKind.AGENT, StepKind.TOOL_CALL):
            content.append(_action(step, "\n".join(thoughts)))
            thoughts = []
        else:
            if thoughts:  # reasoning that led to no action: kept, as an empty message carrying it
                content.append({"class_": "message_action", "content": "", "description": "\n".join(thoughts)})
                thoughts = []
            content.append(_observation(step))
    if thoughts:
        content.append({"class_": "message_action", "content": "", "description": "\n".join(thoughts)})
    # the run's own metadata and gold (resolved, exit_status, ...) stay as ADP datasets keep them in details,
    # where ADP's importer and Libra's read them back
    facts: dict[str, Any] = {**(run.metadata or {}), **(run.gold or {}),
                             "run_id": run.agent or run_id, "libra_run_id": run_id, "source_format": run.format}
    if run.model:
        facts["model"] = run.model
    if run.reward is not None:
        facts["reward"] = run.reward
    if run.outcome:
        facts["outcome"] = run.outcome
    return {"id": run_id, "content": content, "details": {**facts, **(details or {})}}


def validate(traj: dict[str, Any]) -> Trajectory:
    """The trajectory checked against ADP's schema; pydantic's ValidationError names the field."""
    return TRAJECTORY.validate_python(traj)


def write(trajectories: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> Iterator[str]:
    """Validate and write: `.jsonl` one trajectory per line (streamed), otherwise one JSON array
    as ADP's `sample_std.json`. Yields each id as it is written, for progress."""
    p = Path(path)
    lines = p.suffix == ".jsonl"
    tmp = p.with_name(p.name + ".part")
    try:
        with open(tmp, "wb") as f:
            f.write(b"" if lines else b"[")
            first = True
            for t in trajectories:
                validate(t)
                data = orjson.dumps(t, default=str, option=orjson.OPT_NON_STR_KEYS)
                f.write(data + b"\n" if lines else (b"" if first else b",\n") + data)
                first = False
                yield str(t["id"])
            f.write(b"" if lines else b"]\n")
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed export leaves nothing; an earlier file at `path` stays
        raise
    os.replace(tmp, p)  # a reader never sees half a file
