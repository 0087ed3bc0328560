"""Chat-transcript runs: OpenAI messages with `tool_calls`, ShareGPT conversations.

Covers τ-bench results (`{task_id, trial, reward, info, traj}`), SWE-Gym /
OpenHands fine-tuning dumps (`messages` + `tools`), AgentTuning and ETO
(`conversations` with role/content or from/value) and Nebius SWE-agent dumps
(`trajectory` with role/text). One record (array item, line or document)
is one run.
"""

from __future__ import annotations

from typing import Any

from traces.importers import register
from traces.importers._chat import first_user_text, messages_to_steps
from traces.importers.base import Record, RecordError, Sample, Source
from traces.importers.records import RecordImporter
from traces.model import Run

MESSAGE_KEYS = ("messages", "conversations", "traj", "trajectory")
ID_KEYS = ("id", "instance_id", "task_id", "sample_id", "conversation_id")
CONSUMED = set(MESSAGE_KEYS) | set(ID_KEYS) | {
    "reward", "resolved", "target", "info", "model", "model_name", "agent", "exit_status",
    "test_result", "trial",
}


def _message_list(rec: dict) -> tuple[str, list] | None:
    for key in MESSAGE_KEYS:
        msgs = rec.get(key)
        if isinstance(msgs, list) and msgs and isinstance(msgs[0], dict) and (
            "role" in msgs[0] or "from" in msgs[0]
        ):
            return key, msgs
    return None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def outcome_from(reward: float | None, resolved: bool | None) -> str | None:
    if resolved is not None:
        return "success" if resolved else "failure"
    if reward is None:
        return None
    if reward >= 1:
        return "success"
    return "failure" if reward <= 0 else "partial"


class ChatImporter(RecordImporter):
    name = "chat"
    description = "OpenAI/ShareGPT chat transcripts with tool calls (τ-bench, SWE-Gym, AgentTuning)"
    expects = 'an object with a message list (messages, conversations, traj, ...) whose items have a role'

    def sniff(self, sample: Sample) -> bool:
        return isinstance(sample.first, dict) and _message_list(sample.first) is not None

    def run_of(self, rec: Record, source: Source) -> Run:
        d = rec.value
        if not isinstance(d, dict):
            raise RecordError("record is not a JSON object")
        found = _message_list(d)
        if found is None:
            raise RecordError(
                "no message list: expected one of " + ", ".join(MESSAGE_KEYS), "messages"
            )
        key, msgs = found
        steps = messages_to_steps(msgs, key)
        native = next((str(d[k]) for k in ID_KEYS if d.get(k) is not None), None)
        if native is not None and d.get("trial") is not None:
            native = f"{native}#trial{d['trial']}"
        reward = d.get("reward")
        if reward is None:  # nested, as τ-bench style results put it
            for holder in (d.get("reward_info"), (d.get("info") or {}).get("reward_info")
                           if isinstance(d.get("info"), dict) else None):
                if isinstance(holder, dict) and holder.get("reward") is not None:
                    reward = holder["reward"]
                    break
        if reward is not None and not isinstance(reward, int | float):
            raise RecordError("field 'reward' should be a number", "reward")
        resolved = _bool(d.get("resolved"))
        if resolved is None:
            resolved = _bool(d.get("target"))
        gold: dict[str, Any] = {}
        if reward is not None:
            gold["reward"] = reward
        if resolved is not None:
            gold["resolved"] = resolved
        for k in ("exit_status", "test_result"):
            if d.get(k) is not None:
                gold[k] = d[k]
        task = None
        info = d.get("info")
        if isinstance(info, dict):
            t = info.get("task")
            if isinstance(t, dict):
                if t.get("instruction"):
                    gold["user_instruction"] = t["instruction"]
                    task = str(t["instruction"])
                if t.get("actions") is not None:
                    gold["actions"] = t["actions"]
                if t.get("outputs"):
                    gold["outputs"] = t["outputs"]
            rinfo = info.get("reward_info")
            if isinstance(rinfo, dict) and rinfo.get("info") is not None:
                gold["reward_info"] = rinfo.get("info")
        meta = {k: v for k, v in d.items() if k not in CONSUMED}
        # the id keys not used as the run's id stay (a task id beside a record id groups runs by task)
        for k in ID_KEYS:
            if d.get(k) is not None and str(d[k]) != (native or "").split("#trial")[0]:
                meta.setdefault(k, d[k])
        if d.get("trial") is not None:
            meta["trial"] = d["trial"]
        model = d.get("model") or d.get("model_name")
        return Run(
            native_id=native or "",
            format=self.name,
            source=source.name,
            steps=tuple(steps),
            agent=str(d.get("agent") or model or d.get("run_id") or "") or None,
            model=str(model) if model else None,
            task=task or first_user_text(steps),
            outcome=outcome_from(reward, resolved),
            reward=float(reward) if reward is not None else None,
            gold=gold or None,
            metadata=meta or None,
        )


register(ChatImporter())
