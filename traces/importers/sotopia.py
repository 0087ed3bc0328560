"""Sotopia-π human evaluation CSVs: one row per episode and rater.

`data` holds the episode (scenario, agents, goals, parsed_conversation) as
JSON, or as a Python literal in some exports. For each of the two agents a
rater gives seven dimension scores with a written reason each. An episode
(all its rows) becomes one run; each rater's reasons about one agent become
one feedback item by that rater, anchored to that agent's turns, its bullets
in the dimension order with the scores in its metadata. The dimension names
are not written into the feedback text, so induction cannot read them.
"""

from __future__ import annotations

import ast
import csv
import io
import re
import sys
from collections.abc import Iterator
from typing import Any

import orjson

from traces.importers import register
from traces.importers.base import Importer, RecordError, Sample, Source, raw_text
from traces.model import Feedback, Parsed, Rejected, Run, Step, StepKind

DIMENSIONS = ("believability", "relationship", "knowledge", "secret", "social_rules",
              "financial_and_material_benefits", "goal")
_ACT = re.compile(r"^\s*(?P<who>.+?)\s*\[(?P<act>[^\]]+)\]\s*(?P<text>.*)$", re.DOTALL)

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _literal(value: Any, field: str) -> Any:
    if not isinstance(value, str):
        return value
    s = value.strip()
    if not s:
        return None
    try:
        return orjson.loads(s)
    except orjson.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(s)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise RecordError(f"field '{field}' is neither JSON nor a literal: {exc}"[:200], field) from None


def _score(row: dict, key: str) -> float | None:
    v = (row.get(key) or "").strip()
    if not v:
        return None
    try:
        return float(v)
    except ValueError:
        raise RecordError(f"column '{key}' should be a number, got {v[:40]!r}", key) from None


def episode_steps(episode: dict) -> tuple[list[Step], list[str]]:
    conv = _literal(episode.get("parsed_conversation"), "data.parsed_conversation")
    if not isinstance(conv, list):
        raise RecordError("'data.parsed_conversation' should be a list of turns",
                          "data.parsed_conversation")
    names = _literal(episode.get("names"), "data.names") or []
    steps = []
    scenario = episode.get("scenario")
    if scenario:
        steps.append(Step(kind=StepKind.SYSTEM, content=f"Scenario: {scenario}"))
    for i, turn in enumerate(conv):
        if not isinstance(turn, dict) or not isinstance(turn.get("speaker"), str):
            raise RecordError(f"turn {i} needs a speaker", f"data.parsed_conversation[{i}].speaker")
        text = str(turn.get("dialogue", "")).strip()
        meta = None
        m = _ACT.match(text)
        if m and m.group("who").strip() == turn["speaker"]:
            meta = {"act": m.group("act")}
            text = f"[{m.group('act')}] {m.group('text').strip()}"
        elif text.startswith('"') and text.endswith('"') and len(text) > 1:
            text = text[1:-1]
        steps.append(Step(kind=StepKind.AGENT, content=text, actor=turn["speaker"], metadata=meta))
    return steps, [str(n) for n in names] if isinstance(names, list) else []


class SotopiaImporter(Importer):
    name = "sotopia"
    description = "Sotopia-π human evaluation CSV (episodes, ratings and written reasons)"
    expects = 'a CSV with believability_1, data and prolific_id columns'
    priority = 5

    def sniff(self, sample: Sample) -> bool:
        if sample.layout != "csv":
            return False
        header = sample.head.split(b"\n", 1)[0].decode("utf-8", "replace")
        return "believability_1" in header and "data" in header and "prolific_id" in header

    def parse(self, source: Source) -> Iterator[Parsed | Rejected]:
        with source.open() as f:
            text = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="")
            reader = csv.DictReader(text)
            episodes: dict[str, list[tuple[int, dict]]] = {}
            try:
                for row in reader:
                    episodes.setdefault(row.get("pk") or row.get("ID") or "", []).append(
                        (reader.line_num, row))
            except csv.Error as exc:
                yield Rejected(reason=f"unreadable CSV: {exc}", raw="", line=reader.line_num)
        for pk, rows in episodes.items():
            yield from self._episode(pk, rows, source)

    def _episode(self, pk: str, rows: list[tuple[int, dict]], source: Source) -> Iterator[Parsed | Rejected]:
        good: list[tuple[int, dict, dict]] = []
        for line, row in rows:
            try:
                if not pk:
                    raise RecordError("row has no episode id ('pk')", "pk")
                episode = _literal(row.get("data"), "data")
                if not isinstance(episode, dict):
                    raise RecordError("column 'data' should hold the episode object", "data")
                good.append((line, row, episode))
            except RecordError as exc:
                yield Rejected(reason=str(exc), raw=raw_text(orjson.dumps(row, default=str)),
                               line=line, field=exc.field)
        if not good:
            return
        try:
            steps, names = episode_steps(good[0][2])
        except RecordError as exc:
            for line, row, _ in good:
                yield Rejected(reason=str(exc), raw=raw_text(orjson.dumps(row, default=str)),
                               line=line, field=exc.field)
            return
        feedback, ratings, bad = [], [], []
        for line, row, _ in good:
            try:
                fb, rt = self._ratings(row, names, steps)
            except RecordError as exc:
                bad.append(Rejected(reason=str(exc), raw=raw_text(orjson.dumps(row, default=str)),
                                    line=line, field=exc.field))
                continue
            feedback.extend(fb)
            ratings.extend(rt)
        yield from bad
        n_ok = len(good) - len(bad)
        if n_ok == 0:
            return
        ep = good[0][2]
        model = good[0][1].get("model") or None
        goals = _literal(ep.get("social_goal"), "data.social_goal")
        run = Run(
            native_id=pk, format=self.name, source=source.name, steps=tuple(steps),
            agent=model, model=model, task=str(ep.get("scenario") or "")[:4000] or None,
            gold={"human_ratings": ratings},
            metadata={k: v for k, v in {
                "agents": names, "social_goal": goals,
                "personal_info": _literal(ep.get("personal_info"), "data.personal_info"),
            }.items() if v},
            feedback=tuple(feedback), globally_unique_id=True,
        )
        yield Parsed((run,), records=n_ok, line=good[0][0])

    @staticmethod
    def _ratings(row: dict, names: list[str], steps: list[Step]):
        rater = (row.get("prolific_id") or "").strip()
        if not rater:
            raise RecordError("row has no rater id ('prolific_id')", "prolific_id")
        feedback, ratings = [], []
        for k in (1, 2):
            agent = names[k - 1] if len(names) >= k else f"agent {k}"
            scores = {d: _score(row, f"{d}_{k}") for d in DIMENSIONS}
            bullets = [(d, (row.get(f"{d}_reasoning_{k}") or "").strip()) for d in DIMENSIONS]
            bullets = [(d, t) for d, t in bullets if t]
            ratings.append({"rater": rater, "agent": agent, "scores": scores})
            if not bullets:
                continue
            turns = tuple(i for i, s in enumerate(steps) if s.actor == agent)
            feedback.append(Feedback(
                author=rater, text="\n".join(f"- {t}" for _, t in bullets), steps=turns,
                metadata={"agent": agent, "scores": scores, "dataset": "sotopia-pi",
                          "bullets": [{"dimension": d, "text": t} for d, t in bullets]},
            ))
        return feedback, ratings


register(SotopiaImporter())
