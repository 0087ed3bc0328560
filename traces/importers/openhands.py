"""OpenHands output (`output.jsonl`): one instance per line with its event history.

Current format: events carry `source` (user/agent/environment) and either an
`action` (run, edit, read, browse, message, think, finish, ...) or an
`observation` (the result, linked by `cause`). The older resolver format has
no `source` and a flat list of action and observation dicts. Actions'
`thought` becomes a thought step; tool actions become tool calls; their
observations tool results (errors and non-zero exit codes flagged).
"""

from __future__ import annotations

from typing import Any

from traces.importers import register
from traces.importers.base import Record, RecordError, Sample, Source, as_int, maybe_json, parse_time, text_of
from traces.importers.records import RecordImporter
from traces.model import Run, Step, StepKind

SKIP_OBS = {"think", "null", "agent_state_changed", "agent_condensation", "recall"}


def _exit_code(ev: dict) -> int | None:
    extras = ev.get("extras") or {}
    meta = extras.get("metadata") if isinstance(extras, dict) else None
    for src in (meta, extras, ev):
        if isinstance(src, dict) and src.get("exit_code") is not None:
            return as_int(src.get("exit_code"))
    return None


def events_to_steps(history: Any) -> list[Step]:
    if not isinstance(history, list):
        raise RecordError("field 'history' should be a list of events", "history")
    steps: list[Step] = []
    last_usage = (0, 0)
    saw_user = False
    for i, ev in enumerate(history):
        where = f"history[{i}]"
        if isinstance(ev, list):  # oldest format: [action, observation] pairs
            for sub in ev:
                steps.extend(events_to_steps([sub]))
            continue
        if not isinstance(ev, dict):
            raise RecordError(f"'{where}' is not an event object", where)
        ts = parse_time(ev.get("timestamp"))
        src = ev.get("source")
        args = ev.get("args") if isinstance(ev.get("args"), dict) else {
            k: v for k, v in ev.items() if k not in ("action", "observation", "source", "id", "timestamp")
        }
        usage = {}
        metrics = ev.get("llm_metrics")
        if isinstance(metrics, dict):
            acc = metrics.get("accumulated_token_usage") or {}
            cur = (as_int(acc.get("prompt_tokens")) or 0, as_int(acc.get("completion_tokens")) or 0)
            if cur != (0, 0):
                usage = {"input_tokens": max(cur[0] - last_usage[0], 0),
                         "output_tokens": max(cur[1] - last_usage[1], 0)}
                last_usage = cur
        if "action" in ev:
            action = str(ev["action"])
            thought = args.get("thought")
            if action == "message":
                text = text_of(args.get("content") or ev.get("message"))
                is_user = src == "user" or (src is None and not saw_user)
                saw_user = saw_user or is_user
                steps.append(Step(kind=StepKind.USER if is_user else StepKind.AGENT, content=text,
                                  started_at=ts, **({} if is_user else usage)))
            elif action == "system":
                steps.append(Step(kind=StepKind.SYSTEM, content=text_of(args.get("content") or ev.get("message")),
                                  started_at=ts))
            elif action == "think":
                steps.append(Step(kind=StepKind.THOUGHT, content=text_of(thought or ev.get("message")),
                                  started_at=ts, **usage))
            elif action == "finish":
                text = text_of(args.get("final_thought") or thought or ev.get("message") or args.get("outputs"))
                steps.append(Step(kind=StepKind.AGENT, content=text, started_at=ts,
                                  metadata={"finish": True}, **usage))
            elif action == "recall":
                continue
            else:
                if isinstance(thought, str) and thought.strip():
                    steps.append(Step(kind=StepKind.THOUGHT, content=thought, started_at=ts))
                tcm = ev.get("tool_call_metadata") or {}
                name = tcm.get("function_name") if isinstance(tcm, dict) else None
                call_args = {k: v for k, v in args.items() if k not in ("thought", "is_confirmed",
                                                                         "action_risk", "keep_prompt")}
                body = args.get("command") or args.get("code") or args.get("path") or ""
                steps.append(Step(kind=StepKind.TOOL_CALL, tool_name=str(name or action),
                                  tool_args=call_args, content=text_of(body), started_at=ts,
                                  span_id=str(ev["id"]) if ev.get("id") is not None else None,
                                  metadata={"action": action}, **usage))
        elif "observation" in ev:
            obs = str(ev["observation"])
            if obs in SKIP_OBS and obs != "recall":
                continue
            content = text_of(ev.get("content") or ev.get("message"))
            if obs == "recall":
                steps.append(Step(kind=StepKind.OBSERVATION, content=content, started_at=ts))
                continue
            code = _exit_code(ev)
            steps.append(Step(kind=StepKind.TOOL_RESULT, content=content, started_at=ts,
                              tool_name=obs,
                              parent_id=str(ev["cause"]) if ev.get("cause") is not None else None,
                              is_error=obs == "error" or (code is not None and code != 0)
                              or ev.get("success") is False,
                              metadata={"exit_code": code} if code is not None else None))
        elif "content" in ev and not steps:
            steps.append(Step(kind=StepKind.USER, content=text_of(ev["content"]), started_at=ts))
            saw_user = True
        else:
            raise RecordError(f"'{where}' is neither an action nor an observation", where)
    return steps


class OpenHandsImporter(RecordImporter):
    name = "openhands"
    description = "OpenHands output.jsonl event streams (current and resolver formats)"
    expects = 'an object with a "history" list of OpenHands events'
    priority = 5

    def sniff(self, sample: Sample) -> bool:
        d = sample.first
        if not isinstance(d, dict) or not isinstance(d.get("history"), list):
            return False
        h = d["history"]
        return ("instruction" in d or "instance_id" in d) and (
            not h or (isinstance(h[0], dict) and ("action" in h[0] or "observation" in h[0]
                                                   or "content" in h[0]))
            or isinstance(h[0], list)
        ) and "mistake_step" not in d

    def run_of(self, rec: Record, source: Source) -> Run:
        d = rec.value
        if not isinstance(d, dict):
            raise RecordError("record is not a JSON object")
        steps = events_to_steps(d.get("history"))
        meta_in = maybe_json(d.get("metadata")) or {}
        meta_in = meta_in if isinstance(meta_in, dict) else {}
        llm = meta_in.get("llm_config") or {}
        model = llm.get("model") if isinstance(llm, dict) else None
        issue = maybe_json(d.get("issue"))
        native = d.get("instance_id")
        if native is None and isinstance(issue, dict):
            native = f"{issue.get('owner')}/{issue.get('repo')}#{issue.get('number')}"
        gold: dict[str, Any] = {}
        success = d.get("success")
        if isinstance(success, str) and success.lower() in ("true", "false"):
            success = success.lower() == "true"
        if isinstance(success, bool):
            gold["success"] = success
        if d.get("result_explanation"):
            gold["explanation"] = d["result_explanation"]
        tr = maybe_json(d.get("test_result"))
        if isinstance(tr, dict):
            gold["test_result"] = {k: v for k, v in tr.items() if k != "git_patch"}
            if tr.get("git_patch"):
                gold["patch"] = tr["git_patch"]
            if isinstance(tr.get("resolved"), bool):
                gold["resolved"] = tr["resolved"]
        elif d.get("git_patch"):
            gold["patch"] = d["git_patch"]
        resolved = gold.get("resolved", gold.get("success"))
        err = d.get("error")
        outcome = "error" if err else ("success" if resolved is True else "failure" if resolved is False else None)
        task = d.get("instruction") or next((s.content for s in steps if s.kind == StepKind.USER), None)
        times = [s.started_at for s in steps if s.started_at]
        return Run(
            native_id=str(native or ""), format=self.name, source=source.name, steps=tuple(steps),
            agent=str(meta_in.get("agent_class") or "openhands"), model=model,
            task=text_of(task)[:4000] if task else None,
            started_at=min(times) if times else None, ended_at=max(times) if times else None,
            outcome=outcome, reward=1.0 if resolved is True else 0.0 if resolved is False else None,
            gold=gold or None,
            metadata={k: v for k, v in {"error": err, "issue": issue if isinstance(issue, dict) else None,
                                        "metrics": maybe_json(d.get("metrics"))}.items() if v} or None,
        )


register(OpenHandsImporter())
