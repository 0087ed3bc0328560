"""Annotation queues: a set of runs, each to be annotated by k people.

"Next run for me" hands an annotator the first run that still needs people
and that they have not had; the assignment is written in the same
transaction that chose it, so two annotators never take the last slot of a
run.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd

from traces.queries import RunFilter
from traces.store import Store


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def create(store: Store, name: str, created_by: str, k: int = 1, flt: RunFilter | None = None,
           sample: int | None = None, seed: int = 0, run_ids: Sequence[str] | None = None) -> str:
    """A queue of the runs matching `flt` (or of the given `run_ids`, in that order), k people each."""
    if k < 1:
        raise ValueError("each run needs at least one annotator")
    flt = flt or RunFilter()
    where, params = flt.where()
    if run_ids is not None:
        known = {r for r, in store.execute("SELECT run_id FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
                                           [list(run_ids)])}
        ids = [r for r in dict.fromkeys(run_ids) if r in known]
    else:
        ids = [r for r, in store.execute(f"SELECT r.run_id FROM runs r{where} ORDER BY r.run_id", params)]
    if sample is not None and sample < len(ids):
        ids = random.Random(seed).sample(ids, sample)
    if not ids:
        raise ValueError("no run matches that filter")
    qid = f"q-{uuid.uuid4().hex[:10]}"
    filt = {"formats": flt.formats, "agents": flt.agents, "outcomes": flt.outcomes, "text": flt.text,
            "sample": sample, "seed": seed}
    with store.transaction() as con:
        con.execute("INSERT INTO queues (queue_id, name, k, filter, created_by, created_at, closed) "
                    "VALUES (?, ?, ?, ?, ?, ?, false)", [qid, name, k, json.dumps(filt), created_by, _now()])
        con.executemany("INSERT INTO queue_items VALUES (?, ?, ?)", [[qid, r, i] for i, r in enumerate(ids)])
    return qid


def pair_id(run_a: str, run_b: str) -> str:
    """One id for a pair whichever side each run is shown on."""
    lo, hi = sorted((run_a, run_b))
    return "pair-" + hashlib.sha1(f"{lo}\x00{hi}".encode()).hexdigest()[:16]


def create_pairwise(store: Store, name: str, created_by: str, pairs: Sequence[tuple[str, str]], k: int = 1) -> str:
    """A pairwise queue: each item two runs (of one task) shown side by side, k people each.

    Items are the pairs' ids, so taking, finishing and progress work as for runs;
    `pair(store, queue_id, pair_id)` gives the two runs in the order to show them.
    """
    if k < 1:
        raise ValueError("each pair needs at least one annotator")
    ids = [r for r, in store.execute("SELECT run_id FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
                                     [sorted({r for p in pairs for r in p})])]
    known = set(ids)
    todo = list(dict.fromkeys((a, b) for a, b in pairs if a != b and a in known and b in known))
    if not todo:
        raise ValueError("no pair of two stored runs given")
    qid = f"q-{uuid.uuid4().hex[:10]}"
    with store.transaction() as con:
        con.execute("INSERT INTO queues (queue_id, name, k, filter, created_by, created_at, closed, kind) "
                    "VALUES (?, ?, ?, ?, ?, ?, false, 'pairs')",
                    [qid, name, k, json.dumps({"pairs": len(todo)}), created_by, _now()])
        con.executemany("INSERT INTO queue_items VALUES (?, ?, ?)",
                        [[qid, pair_id(a, b), i] for i, (a, b) in enumerate(todo)])
        con.executemany("INSERT INTO queue_pairs VALUES (?, ?, ?, ?)", [[qid, pair_id(a, b), a, b] for a, b in todo])
    return qid


def pair(store: Store, queue_id: str, item: str) -> tuple[str, str] | None:
    """The two runs of a pairwise queue's item, A then B; None for a queue of runs."""
    row = store.execute("SELECT run_a, run_b FROM queue_pairs WHERE queue_id = ? AND pair_id = ?", [queue_id, item])
    return (row[0][0], row[0][1]) if row else None


def list_queues(store: Store):
    return store.df(
        "SELECT q.queue_id, q.name, coalesce(q.kind, 'runs') AS kind, q.k, q.created_by, q.created_at, "
        "count(i.run_id) AS runs, "
        "(SELECT count(*) FROM queue_assignments a WHERE a.queue_id = q.queue_id AND a.status = 'done') AS done "
        "FROM queues q LEFT JOIN queue_items i USING (queue_id) WHERE NOT q.closed GROUP BY ALL ORDER BY q.created_at")


def next_run(store: Store, queue_id: str, username: str) -> str | None:
    """The run this annotator should do next in the queue (resuming an open one), or None when done."""
    with store.transaction() as con:
        open_ = con.execute("SELECT run_id FROM queue_assignments WHERE queue_id = ? AND username = ? "
                            "AND status = 'assigned' ORDER BY assigned_at LIMIT 1", [queue_id, username]).fetchone()
        if open_:
            return open_[0]
        k = con.execute("SELECT k FROM queues WHERE queue_id = ?", [queue_id]).fetchone()
        if not k:
            raise KeyError(f"no queue {queue_id!r}")
        row = con.execute(
            "SELECT i.run_id FROM queue_items i WHERE i.queue_id = ? "
            "AND NOT EXISTS (SELECT 1 FROM queue_assignments a WHERE a.queue_id = i.queue_id "
            "                AND a.run_id = i.run_id AND a.username = ?) "
            "AND (SELECT count(*) FROM queue_assignments a WHERE a.queue_id = i.queue_id AND a.run_id = i.run_id "
            "     AND a.status != 'skipped') < ? "
            "ORDER BY i.position LIMIT 1", [queue_id, username, k[0]]).fetchone()
        if row is None:
            return None
        con.execute("INSERT INTO queue_assignments VALUES (?, ?, ?, 'assigned', ?, NULL)",
                    [queue_id, row[0], username, _now()])
        return row[0]


def finish(store: Store, queue_id: str, run_id: str, username: str, status: str = "done") -> None:
    if status not in ("done", "skipped"):
        raise ValueError("status is done or skipped")
    with store.transaction() as con:
        # only an open assignment: a finished one is never overwritten (a late Skip after Done)
        con.execute("UPDATE queue_assignments SET status = ?, done_at = ? WHERE queue_id = ? AND run_id = ? "
                    "AND username = ? AND status = 'assigned'", [status, _now(), queue_id, run_id, username])


def record(store: Store, queue_id: str, run_id: str, username: str, status: str = "done") -> None:
    """Record that `username` already did this run of the queue (a labelling round done elsewhere and
    imported with its notes), as if they had taken it from the queue and finished it."""
    if status not in ("done", "skipped"):
        raise ValueError("status is done or skipped")
    with store.transaction() as con:
        if not con.execute("SELECT 1 FROM queue_items WHERE queue_id = ? AND run_id = ?", [queue_id, run_id]).fetchone():
            raise KeyError(f"run {run_id!r} is not in queue {queue_id!r}")
        con.execute("DELETE FROM queue_assignments WHERE queue_id = ? AND run_id = ? AND username = ? "
                    "AND status = 'assigned'", [queue_id, run_id, username])
        con.execute("INSERT INTO queue_assignments SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM "
                    "queue_assignments WHERE queue_id = ? AND run_id = ? AND username = ?)",
                    [queue_id, run_id, username, status, _now(), _now(), queue_id, run_id, username])


def progress(store: Store, queue_id: str, username: str | None = None) -> dict:
    total, k = store.execute("SELECT count(*), any_value(q.k) FROM queue_items i JOIN queues q USING (queue_id) "
                             "WHERE queue_id = ?", [queue_id])[0]
    done = store.scalar("SELECT count(*) FROM queue_assignments WHERE queue_id = ? AND status = 'done'", [queue_id])
    out = {"runs": total, "k": k or 1, "slots": total * (k or 1), "done": done}
    if username:
        out["mine_done"] = store.scalar("SELECT count(*) FROM queue_assignments WHERE queue_id = ? AND username = ? "
                                        "AND status = 'done'", [queue_id, username])
        # what next_run can still hand this person: runs they have not had that still need someone
        out["mine_available"] = store.scalar(
            "SELECT count(*) FROM queue_items i WHERE queue_id = ? AND NOT EXISTS (SELECT 1 FROM queue_assignments a "
            "WHERE a.queue_id = i.queue_id AND a.run_id = i.run_id AND a.username = ?) "
            "AND (SELECT count(*) FROM queue_assignments a WHERE a.queue_id = i.queue_id AND a.run_id = i.run_id "
            "     AND a.status != 'skipped') < ?", [queue_id, username, k or 1])
    return out


def who_said_what(store: Store, queue_id: str) -> pd.DataFrame:
    """Per run of the queue and person assigned it: their status, their notes' ratings and texts.

    What a reviewer reads to see where people disagree: each person's word on the same run side
    by side. Notes are read journal-aware, like everywhere else, so a note just saved is there.
    """
    from traces.annotation import feedback

    assigned = store.df("SELECT a.run_id, a.username, a.status, a.done_at, i.position FROM queue_assignments a "
                        "JOIN queue_items i USING (queue_id, run_id) WHERE a.queue_id = ? "
                        "ORDER BY i.position, a.username", [queue_id])
    cols = ["run_id", "username", "status", "notes", "rating", "said"]
    if assigned.empty:
        return pd.DataFrame(columns=cols)
    notes: dict[tuple[str, str], list] = {}
    for f in feedback.load(store, list(dict.fromkeys(assigned["run_id"]))):
        notes.setdefault((f.run_id or "", f.author), []).append(f)
    rows = []
    for r in assigned.itertuples():
        mine = notes.get((r.run_id, r.username), [])
        ratings = [f.rating for f in mine if f.rating is not None]
        rows.append({"run_id": r.run_id, "username": r.username, "status": r.status, "notes": len(mine),
                     "rating": sum(ratings) / len(ratings) if ratings else None,
                     "said": " | ".join(f.text for f in mine)})
    return pd.DataFrame(rows, columns=cols)
