"""SWE-agent trajectories (`.traj`): `{environment, trajectory, history, info}`.

The history's system and first user messages set the scene; each trajectory
entry becomes a thought, the command as a tool call, and its observation.
"""

from __future__ import annotations


from traces.importers import register
from traces.importers._chat import action_name, looks_like_error
from traces.importers.base import Record, RecordError, Sample, Source, as_int, maybe_json, text_of
from traces.importers.records import RecordImporter
from traces.model import Run, Step, StepKind


class SweAgentImporter(RecordImporter):
    name = "swe-agent"
    description = "SWE-agent .traj trajectories"
    expects = 'an object with a "trajectory" of {action, ...} and "info" or "environment"'
    priority = 5

    def sniff(self, sample: Sample) -> bool:
        d = sample.first
        return isinstance(d, dict) and isinstance(d.get("trajectory"), list) and (
            "info" in d or "environment" in d
        ) and (not d["trajectory"] or "action" in d["trajectory"][0])

    def run_of(self, rec: Record, source: Source) -> Run:
        d = rec.value
        if not isinstance(d, dict):
            raise RecordError("record is not a JSON object")
        traj = d.get("trajectory")
        if not isinstance(traj, list):
            raise RecordError("field 'trajectory' should be a list", "trajectory")
        steps: list[Step] = []
        history = d.get("history") or []
        for m in history:
            if not isinstance(m, dict):
                continue
            role = m.get("role")
            if role == "system":
                steps.append(Step(kind=StepKind.SYSTEM, content=text_of(m.get("content")), actor=m.get("agent")))
            elif role == "user" and not m.get("is_demo") and "demonstration" not in text_of(m.get("content"))[:200]:
                steps.append(Step(kind=StepKind.USER, content=text_of(m.get("content")), actor=None))
                break
        for i, t in enumerate(traj):
            where = f"trajectory[{i}]"
            if not isinstance(t, dict):
                raise RecordError(f"'{where}' is not an object", where)
            if "action" not in t:
                raise RecordError(f"'{where}' has no action", f"{where}.action")
            thought = text_of(t.get("thought") or t.get("response"))
            if thought.strip():
                steps.append(Step(kind=StepKind.THOUGHT, content=thought))
            action = text_of(t.get("action")).strip()
            state = maybe_json(t.get("state"))
            steps.append(Step(kind=StepKind.TOOL_CALL, content=action, tool_name=action_name(action),
                              tool_args={"command": action},
                              metadata={"state": state} if state else None))
            obs = text_of(t.get("observation"))
            steps.append(Step(kind=StepKind.TOOL_RESULT, content=obs, tool_name=action_name(action),
                              is_error=looks_like_error(obs) or "Traceback (most recent call last)" in obs[:2000]))
        info = d.get("info") or {}
        if not isinstance(info, dict):
            raise RecordError("field 'info' should be an object", "info")
        stats = maybe_json(info.get("model_stats")) or {}
        stats = stats if isinstance(stats, dict) else {}
        gold = {k: info[k] for k in ("exit_status", "submission") if info.get(k)}
        cfg = maybe_json(d.get("replay_config")) or {}
        model = None
        if isinstance(cfg, dict):
            agent_cfg = cfg.get("agent") or {}
            model = (agent_cfg.get("model") or {}).get("name") if isinstance(agent_cfg, dict) else None
        task = next((s.content for s in steps if s.kind == StepKind.USER), None)
        exit_status = info.get("exit_status")
        return Run(
            native_id=source.name.rsplit("/", 1)[-1].removesuffix(".traj"),
            format=self.name, source=source.name, steps=tuple(steps), agent="swe-agent",
            model=model, task=task[:4000] if task else None,
            outcome=("submitted" if exit_status == "submitted" else (str(exit_status) if exit_status else None)),
            gold=gold or None,
            metadata={k: v for k, v in {
                "cost": stats.get("instance_cost"), "tokens_sent": as_int(stats.get("tokens_sent")),
                "tokens_received": as_int(stats.get("tokens_received")),
                "api_calls": as_int(stats.get("api_calls")),
            }.items() if v is not None} or None,
        )


register(SweAgentImporter())
