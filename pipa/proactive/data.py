"""Proactive proposals: the events an assistant saw, what it proposed (or silence), and people's verdicts.

ProactiveBench's label is `valid`: for a proposal, whether people accepted
it; for silence, whether staying silent was right. Its four categories
follow from the label and whether there was a proposal:

| proposal? | valid | category               |
|-----------|-------|------------------------|
| yes       | yes   | Correct-Detection (CD) |
| yes       | no    | False-Alarm (FA)       |
| no        | yes   | Correct-Rejection (CR) |
| no        | no    | Missed-Need (MN)       |
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from traces.store import Store

CATEGORIES = ("Correct-Detection (CD)", "False-Alarm (FA)", "Correct-Rejection (CR)", "Missed-Need (MN)")


@dataclass(frozen=True)
class Event:
    time: str | None
    text: str


@dataclass(frozen=True)
class Proposal:
    """One decision point: the events so far and the assistant's proposal (None: it stayed silent)."""

    events: tuple[Event, ...]
    task: str | None
    judgements: tuple[bool, ...] = ()  # each person's accept (True) or reject
    valid: bool | None = None  # the label; None when unlabelled
    help_needed: bool | None = None
    source: str | None = None  # where it came from: file and line, or a run id
    stream: str | None = None  # the event stream it belongs to, for grouped splits

    @property
    def silent(self) -> bool:
        return self.task is None

    @property
    def majority(self) -> bool | None:
        if not self.judgements:
            return None
        return sum(self.judgements) * 2 > len(self.judgements)

    @property
    def category(self) -> str | None:
        return None if self.valid is None else category(self.silent, self.valid)


def category(silent: bool, valid: bool) -> str:
    if silent:
        return "Correct-Rejection (CR)" if valid else "Missed-Need (MN)"
    return "Correct-Detection (CD)" if valid else "False-Alarm (FA)"


def _task_text(task) -> str | None:
    if task in (None, "", []):
        return None
    if isinstance(task, list):
        return "\n".join(str(t) for t in task)
    return str(task)


def from_record(d: dict, source: str | None = None) -> Proposal:
    events = tuple(Event(e.get("time"), str(e.get("event", ""))) for e in d["obs"])
    return Proposal(events, _task_text(d.get("pred_task")), tuple(bool(a) for a in d.get("annotation") or ()),
                    d.get("valid"), d.get("help_needed"), source, stream=events[0].text if events else None)


def load_jsonl(path: str | Path) -> list[Proposal]:
    """ProactiveBench reward data (`train_data.jsonl`), one labelled proposal per line."""
    path = Path(path)
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(from_record(json.loads(line), f"{path.name}:{n}"))
                except (KeyError, TypeError, ValueError) as exc:
                    raise ValueError(f"{path}:{n}: not a ProactiveBench proposal record ({exc})") from exc
    return out


def data_hash(proposals: list[Proposal]) -> str:
    h = hashlib.sha256()
    for p in proposals:
        h.update(json.dumps([[e.text for e in p.events], p.task, p.valid], ensure_ascii=False).encode())
    return h.hexdigest()


def from_store(store: Store, labelled: bool = True) -> list[Proposal]:
    """Proposals held in the store as ProactiveBench runs (events, then the proposal step)."""
    rows = store.execute(
        "SELECT r.run_id, r.gold, list(s.kind ORDER BY s.idx), list(s.content ORDER BY s.idx), "
        "list(s.metadata ORDER BY s.idx) FROM runs r JOIN steps s USING (run_id) "
        "WHERE r.format = 'proactivebench' AND json_extract(r.gold, '$.valid') IS NOT NULL "
        "GROUP BY r.run_id, r.gold ORDER BY r.run_id")
    out = []
    for rid, gold, kinds, contents, metas in rows:
        g = json.loads(gold)
        events = tuple(Event(None, c or "") for k, c in zip(kinds, contents, strict=True) if k == "observation")
        last = json.loads(metas[-1]) if metas and metas[-1] else {}
        task = None if last.get("silent") else _task_text(last.get("proposal") or contents[-1])
        out.append(Proposal(events, task, tuple(g.get("annotation") or ()), g.get("valid"), g.get("help_needed"),
                            rid, stream=events[0].text if events else None))
    return out


def decision_points(steps) -> list[tuple[Proposal, int]]:
    """The proposals an agent made along an event stream (a ProactiveBench trace run), unlabelled.

    Returns each proposal with the index of its step, so verdicts can be anchored.
    """
    out, events = [], []
    for i, s in enumerate(steps):
        kind = s.kind if isinstance(s.kind, str) else str(s.kind)
        meta = s.metadata or {}
        if kind == "observation":
            events.append(Event(None, s.content or ""))
        elif kind == "agent_message" and ("proposal" in meta or meta.get("silent")):
            task = None if meta.get("silent") else _task_text(meta.get("proposal"))
            out.append((Proposal(tuple(events), task, stream=events[0].text if events else None), i))
    return out
