"""Metric sets in the store: versioned, editable by people, approved, and moved as YAML.

Every change writes a new version; old versions stay, so scores always say
exactly which definitions produced them. Only approved sets are applied by
scheduled scoring.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime

import yaml

from metrics.definitions import Example, Metric, MetricSet
from traces.store import Store

STATUSES = ("draft", "approved", "retired")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _examples(raw: str | list) -> tuple[Example, ...]:
    items = json.loads(raw) if isinstance(raw, str) else raw
    return tuple(Example(text=e["text"], run_id=e.get("run_id"), steps=tuple(e.get("steps") or ()),
                         feedback_id=e.get("feedback_id")) for e in items or [])


def _ex_json(examples: tuple[Example, ...]) -> str:
    return json.dumps([{k: v for k, v in asdict(e).items() if v not in (None, (), [])} for e in examples])


def save(store: Store, ms: MetricSet, *, backend: str | None = None, created_by: str | None = None,
         note: str | None = None, approved_by: str | None = None) -> MetricSet:
    """Store `ms` as the next version of its set id; returns it with that version.

    A saved version is a draft (or retired, when `ms` is) whatever status `ms`
    claims: a set file saying `status: approved` is not an approval. Only
    `approved_by` approves on saving, for sets Libra makes itself (PIPA's,
    proactivity's); people approve through `approve`, which records who and when.

    Serialised on a lake, where two people saving the same set at once would
    otherwise both get version N + 1: the later one is run again and gets N + 2.
    """
    return store.write(lambda con: _save(con, ms, backend, created_by, note, approved_by), serialise="metric_sets")


def _save(con, ms: MetricSet, backend: str | None, created_by: str | None, note: str | None,
          approved_by: str | None) -> MetricSet:
    latest = con.execute("SELECT max(version) FROM metric_sets WHERE set_id = ?", [ms.set_id]).fetchone()[0]
    version = (latest or 0) + 1
    status = "approved" if approved_by else "retired" if ms.status == "retired" else "draft"
    ms = replace(ms, version=version, status=status)
    now = _now()
    con.execute(
        "INSERT INTO metric_sets (set_id, version, name, status, backend, provenance, created_at, created_by, note, "
        "approved_by, approved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [ms.set_id, version, ms.name, ms.status, backend, json.dumps(ms.provenance, default=str), now,
         created_by, note, approved_by, now if approved_by else None])
    con.executemany(
        "INSERT INTO metric_defs (set_id, version, position, metric_id, name, explanation, good, bad, scope, kind, "
        "metadata, subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[ms.set_id, version, i, m.metric_id, m.name, m.explanation, _ex_json(m.good), _ex_json(m.bad),
          m.scope, m.kind, json.dumps(m.metadata, default=str), m.subject] for i, m in enumerate(ms.metrics)])
    return ms


def load(store: Store, set_id: str, version: int | None = None) -> MetricSet:
    with store.connection() as con:
        if version is None:
            row = con.execute("SELECT max(version) FROM metric_sets WHERE set_id = ?", [set_id]).fetchone()
            version = row[0] if row else None
        head = con.execute("SELECT name, status, provenance FROM metric_sets WHERE set_id = ? AND version = ?",
                           [set_id, version]).fetchone() if version is not None else None
        if head is None:
            raise KeyError(f"no metric set {set_id!r}" + (f" version {version}" if version else ""))
        rows = con.execute(
            "SELECT metric_id, name, explanation, good, bad, scope, kind, metadata, coalesce(subject, 'run') "
            "FROM metric_defs WHERE set_id = ? AND version = ? ORDER BY position", [set_id, version]).fetchall()
    metrics = tuple(Metric(r[0], r[1], r[2], _examples(r[3]), _examples(r[4]), r[5], r[6],
                           json.loads(r[7]) if r[7] else {}, r[8]) for r in rows)
    return MetricSet(set_id, version, head[0], metrics, head[1], json.loads(head[2]) if head[2] else {})


def list_sets(store: Store):
    return store.df(
        "SELECT s.set_id, s.version, s.name, s.status, s.backend, s.created_at, s.created_by, s.approved_by, "
        "(SELECT count(*) FROM metric_defs d WHERE d.set_id = s.set_id AND d.version = s.version) AS metrics "
        "FROM metric_sets s ORDER BY s.set_id, s.version")


def is_induced(ms: MetricSet) -> bool:
    """A set made from people's feedback (induced, or updated from newer feedback): the ones whose
    coverage of new feedback is watched."""
    return ms.provenance.get("method") in ("autolibra", "autolibra-update")


def approved(store: Store) -> list[MetricSet]:
    """The newest approved version of every set; a version marked approved by nobody is not one."""
    rows = store.execute(
        "SELECT set_id, max(version) FROM metric_sets WHERE status = 'approved' AND approved_by IS NOT NULL "
        "GROUP BY set_id ORDER BY set_id")
    return [load(store, s, v) for s, v in rows]


def set_status(store: Store, set_id: str, version: int, status: str, by: str | None = None) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}")
    with store.transaction() as con:
        n = con.execute("SELECT count(*) FROM metric_sets WHERE set_id = ? AND version = ?",
                        [set_id, version]).fetchone()[0]
        if not n:
            raise KeyError(f"no metric set {set_id!r} version {version}")
        con.execute("UPDATE metric_sets SET status = ?, approved_by = ?, approved_at = ? "
                    "WHERE set_id = ? AND version = ?",
                    [status, by if status == "approved" else None, _now() if status == "approved" else None,
                     set_id, version])


def approve(store: Store, set_id: str, version: int, by: str) -> None:
    """Record that `by` approved this version. Who may approve is the caller's to check (`libra.approve`)."""
    if not by:
        raise ValueError("an approval needs the approver")
    set_status(store, set_id, version, "approved", by)


# -- edits: each returns the new version ------------------------------------------

def edit_metric(store: Store, ms: MetricSet, metric_id: str, *, by: str | None = None, **changes) -> MetricSet:
    metrics = [replace(m, **changes) if m.metric_id == metric_id else m for m in ms.metrics]
    if metrics == list(ms.metrics):
        raise KeyError(metric_id)
    return save(store, replace(ms, metrics=tuple(metrics), status="draft"), created_by=by,
                note=f"edited {metric_id}: {', '.join(changes)}")


def delete_metric(store: Store, ms: MetricSet, metric_id: str, *, by: str | None = None) -> MetricSet:
    ms.get(metric_id)
    return save(store, replace(ms, metrics=tuple(m for m in ms.metrics if m.metric_id != metric_id),
                               status="draft"), created_by=by, note=f"deleted {metric_id}")


def merge_metrics(store: Store, ms: MetricSet, metric_ids: list[str], name: str, explanation: str | None = None,
                  *, by: str | None = None) -> MetricSet:
    parts = [ms.get(i) for i in metric_ids]
    merged = Metric(
        metric_id=parts[0].metric_id, name=name,
        explanation=explanation or " ".join(p.explanation for p in parts),
        good=tuple(e for p in parts for e in p.good), bad=tuple(e for p in parts for e in p.bad),
        scope=parts[0].scope, kind=parts[0].kind,
        metadata={"merged_from": metric_ids, **parts[0].metadata}, subject=parts[0].subject)
    out, placed = [], False
    for m in ms.metrics:
        if m.metric_id in metric_ids:
            if not placed:
                out.append(merged)
                placed = True
            continue
        out.append(m)
    return save(store, replace(ms, metrics=tuple(out), status="draft"), created_by=by,
                note=f"merged {', '.join(metric_ids)}")


def split_metric(store: Store, ms: MetricSet, metric_id: str, moved: list[tuple[str, int]], name: str,
                 explanation: str | None = None, *, by: str | None = None) -> MetricSet:
    """Move some of a metric's examples (("good" | "bad", index) pairs) into a new metric after it.

    For a metric that turned out to hold two behaviours: each keeps the examples that show it.
    """
    m = ms.get(metric_id)
    picked = {(side, int(i)) for side, i in moved}
    if not picked or not all(side in ("good", "bad") and 0 <= i < len(getattr(m, side)) for side, i in picked):
        raise ValueError(f"choose examples of {metric_id!r} to move: ('good' or 'bad', index) pairs")

    def part(side: str, keep: bool) -> tuple[Example, ...]:
        return tuple(e for i, e in enumerate(getattr(m, side)) if ((side, i) in picked) != keep)

    taken = {x.metric_id for x in ms.metrics}
    new_id = next(f"{metric_id}-{n}" for n in range(2, len(taken) + 3) if f"{metric_id}-{n}" not in taken)
    rest = replace(m, good=part("good", True), bad=part("bad", True))
    new = replace(m, metric_id=new_id, name=name, explanation=explanation or m.explanation,
                  good=part("good", False), bad=part("bad", False), metadata={**m.metadata, "split_from": metric_id})
    out = [x for y in ms.metrics for x in ((rest, new) if y.metric_id == metric_id else (y,))]
    return save(store, replace(ms, metrics=tuple(out), status="draft"), created_by=by,
                note=f"split {new_id} from {metric_id}")


# -- YAML -------------------------------------------------------------------------

def to_yaml(ms: MetricSet) -> str:
    def ex(e: Example) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(e).items() if v not in (None, ())}

    doc = {
        "libra_metric_set": 1, "set_id": ms.set_id, "version": ms.version, "name": ms.name,
        "status": ms.status, "provenance": ms.provenance,
        "metrics": [{"id": m.metric_id, "name": m.name, "explanation": m.explanation,
                     "good": [ex(e) for e in m.good], "bad": [ex(e) for e in m.bad],
                     "scope": m.scope, "kind": m.kind, **({"subject": m.subject} if m.subject != "run" else {}),
                     **({"metadata": m.metadata} if m.metadata else {})}
                    for m in ms.metrics],
    }
    return yaml.safe_dump(json.loads(json.dumps(doc, default=str)), sort_keys=False, allow_unicode=True, width=100)


def from_yaml(text: str, source: str = "<yaml>") -> MetricSet:
    """Parse a metric set; errors name the file and the field."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    class ExampleIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: str = Field(min_length=1)
        run_id: str | None = None
        steps: list[int] = []
        feedback_id: str | None = None

    class MetricIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        id: str = Field(min_length=1)
        name: str = Field(min_length=1)
        explanation: str
        good: list[ExampleIn] = []
        bad: list[ExampleIn] = []
        scope: str = "run"
        kind: str = "induced"
        metadata: dict = {}
        subject: Literal["run", "agent"] = "run"

    class SetIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        libra_metric_set: int = 1
        set_id: str = Field(min_length=1)
        version: int = 0
        name: str
        status: str = "draft"
        provenance: dict = {}
        metrics: list[MetricIn] = Field(min_length=1)

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ValueError(f"{source}{where}: not valid YAML: {exc}") from None
    try:
        doc = SetIn.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise ValueError(f"{source}: field {'.'.join(map(str, e['loc']))}: {e['msg']}") from None
    ids = [m.id for m in doc.metrics]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{source}: field metrics: metric ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")

    def conv(e: ExampleIn) -> Example:
        return Example(e.text, e.run_id, tuple(e.steps), e.feedback_id)

    return MetricSet(doc.set_id, doc.version, doc.name, tuple(
        Metric(m.id, m.name, m.explanation, tuple(map(conv, m.good)), tuple(map(conv, m.bad)), m.scope, m.kind,
               m.metadata, m.subject) for m in doc.metrics), doc.status if doc.status in STATUSES else "draft", doc.provenance)
