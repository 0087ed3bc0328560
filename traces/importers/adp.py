"""Agent Data Protocol, standardised form (`sample_std.json`).

A trajectory is `{id, content: [...], details}`; content items carry a
`class_`: text_observation, web_observation, image_observation (observations),
message_action, api_action, code_action (actions). An action's `description`
is the agent's reasoning and becomes a thought step before it.
"""

from __future__ import annotations

from typing import Any

from traces.importers import register
from traces.importers._chat import looks_like_error
from traces.importers.base import require, Record, RecordError, Sample, Source, text_of
from traces.importers.records import RecordImporter
from traces.importers.chat import outcome_from
from traces.model import Run, Step, StepKind

CLASSES = {"text_observation", "web_observation", "image_observation", "message_action",
           "api_action", "code_action"}
SOURCE_KIND = {"user": StepKind.USER, "environment": StepKind.OBSERVATION,
               "agent": StepKind.AGENT, "system": StepKind.SYSTEM}


def _class(item: dict) -> str:
    c = str(item.get("class_", ""))
    # Tolerate the CamelCase names the schema document's example uses.
    return {"TextObservation": "text_observation", "WebObservation": "web_observation",
            "MessageAction": "message_action", "ApiAction": "api_action",
            "CodeAction": "code_action", "ImageObservation": "image_observation"}.get(c, c)


def items_to_steps(content: Any) -> list[Step]:
    if not isinstance(content, list):
        raise RecordError("field 'content' should be a list", "content")
    steps: list[Step] = []
    for i, item in enumerate(content):
        where = f"content[{i}]"
        if not isinstance(item, dict):
            raise RecordError(f"'{where}' is not an object", where)
        cls = _class(item)
        if cls not in CLASSES:
            raise RecordError(f"unknown class_ {item.get('class_')!r} at '{where}'", f"{where}.class_")
        desc = item.get("description") or item.get("thoughts")
        if cls.endswith("_action") and isinstance(desc, str) and desc.strip():
            steps.append(Step(kind=StepKind.THOUGHT, content=desc))
        if cls == "text_observation":
            src = item.get("source") or "environment"
            kind = SOURCE_KIND.get(src)
            if kind is None:
                raise RecordError(f"unknown source {src!r} at '{where}.source'", f"{where}.source")
            text = text_of(item.get("content", item.get("text")))
            steps.append(Step(kind=kind, content=text, actor=item.get("name"),
                              is_error=kind == StepKind.OBSERVATION and looks_like_error(text)))
        elif cls == "web_observation":
            text = item.get("axtree") or item.get("html") or ""
            steps.append(Step(kind=StepKind.OBSERVATION, content=text_of(text),
                              metadata={"url": item["url"]} if item.get("url") else None))
        elif cls == "image_observation":
            steps.append(Step(kind=StepKind.OBSERVATION, content="[image]",
                              metadata={"source": item.get("source")}))
        elif cls == "message_action":
            steps.append(Step(kind=StepKind.AGENT, content=text_of(item.get("content", item.get("message")))))
        elif cls == "api_action":
            fn = item.get("function")
            if not isinstance(fn, str) or not fn:
                raise RecordError(f"'{where}.function' should name the API called", f"{where}.function")
            steps.append(Step(kind=StepKind.TOOL_CALL, tool_name=fn, tool_args=item.get("kwargs")))
        elif cls == "code_action":
            lang = item.get("language") or "code"
            steps.append(Step(kind=StepKind.TOOL_CALL, tool_name=f"code:{lang}",
                              content=text_of(item.get("content")),
                              tool_args={"language": lang, "code": text_of(item.get("content"))}))
    return steps


class AdpImporter(RecordImporter):
    name = "adp"
    description = "Agent Data Protocol standardised trajectories (content items with class_)"
    expects = 'an object with "id" and a "content" list of items with "class_"'

    def sniff(self, sample: Sample) -> bool:
        d = sample.first
        if not (isinstance(d, dict) and isinstance(d.get("content"), list) and "id" in d):
            return False
        c = d["content"]
        return bool(c) and isinstance(c[0], dict) and _class(c[0]) in CLASSES

    def run_of(self, rec: Record, source: Source) -> Run:
        d = rec.value
        if not isinstance(d, dict):
            raise RecordError("record is not a JSON object")
        require(d, "id")
        steps = items_to_steps(d.get("content"))
        details = d.get("details") or {}
        if not isinstance(details, dict):
            raise RecordError("field 'details' should be an object", "details")
        gold = {}
        resolved = details.get("resolved")
        if isinstance(resolved, str):
            resolved = resolved.lower() == "true" if resolved.lower() in ("true", "false") else None
        if isinstance(resolved, bool):
            gold["resolved"] = resolved
        reward = details.get("reward")
        reward = float(reward) if isinstance(reward, int | float) and not isinstance(reward, bool) else None
        if reward is not None:
            gold["reward"] = reward
        for k in ("exit_status", "generated_patch"):
            if details.get(k):
                gold[k] = details[k]
        model = details.get("model_name") or details.get("model")
        meta = {k: v for k, v in details.items() if k not in gold and k not in ("model_name", "model")}
        task = next((s.content for s in steps if s.kind == StepKind.USER and len(s.content) > 0), None)
        return Run(
            native_id=str(d["id"]), format=self.name, source=source.name, steps=tuple(steps),
            agent=str(details.get("run_id") or model or "") or None,
            model=str(model) if model else None,
            task=task[:4000] if task else None, outcome=outcome_from(reward, resolved if isinstance(resolved, bool) else None),
            reward=reward, gold=gold or None, metadata=meta or None,
        )


register(AdpImporter())
