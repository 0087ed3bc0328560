"""Pairwise preferences: two runs of one task side by side, which is better and why.

A preference names the two runs in the order they were shown (A, B), the
choice (`a`, `b` or `tie`), the person's reason and the steps on either side it
points at. The reason is also kept as a note on the run it speaks for (the
preferred one; the other when only its steps are pointed at), through the same
journal as every note, so it flows into induction like any other feedback.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import pandas as pd

from traces.annotation import feedback
from traces.annotation.queues import pair_id
from traces.store import Store

CHOICES = ("a", "b", "tie")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def save(store: Store, run_a: str, run_b: str, author: str, choice: str, reason: str = "", *,
         steps_a: Iterable[int] = (), steps_b: Iterable[int] = (), queue_id: str | None = None) -> str:
    """Record one person's preference; returns its id. ValueError for an unknown choice or run."""
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {', '.join(CHOICES)}")
    if run_a == run_b:
        raise ValueError("a preference compares two different runs")
    n_steps = dict(store.execute("SELECT run_id, n_steps FROM runs WHERE run_id IN (?, ?)", [run_a, run_b]))
    for r in (run_a, run_b):
        if r not in n_steps:
            raise ValueError(f"no run {r!r} in the store")
    sa = sorted({int(i) for i in steps_a if 0 <= int(i) < n_steps[run_a]})
    sb = sorted({int(i) for i in steps_b if 0 <= int(i) < n_steps[run_b]})
    pref_id = f"pref-{uuid.uuid4().hex}"
    fid = None
    text = (reason or "").strip()
    if text:
        # the reason speaks for the preferred run, unless it only points at the other's steps
        preferred = "b" if choice == "b" else "a"
        other = "a" if preferred == "b" else "b"
        pointed = {"a": bool(sa), "b": bool(sb)}
        side = other if pointed[other] and not pointed[preferred] else preferred
        target, steps = (run_b, sb) if side == "b" else (run_a, sa)
        fid = feedback.add(store, target, author, text, steps, n_steps=n_steps[target],
                           metadata={"preference": pref_id, "side": side, "choice": choice,
                                     "other_run": run_a if target == run_b else run_b})
    with store.transaction() as con:
        con.execute("INSERT INTO preferences VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [pref_id, pair_id(run_a, run_b), run_a, run_b, author, choice, text or None, sa, sb, queue_id,
                     fid, _now()])
    return pref_id


def load(store: Store, *, queue_id: str | None = None, authors: Sequence[str] | None = None) -> pd.DataFrame:
    """Every preference with both runs' agents and tasks, and the winning run (None for a tie)."""
    return store.df(
        """
        SELECT p.pref_id, p.pair_id, p.run_a, p.run_b, p.author, p.choice, p.reason, p.steps_a, p.steps_b,
               p.queue_id, p.created_at, ra.agent AS agent_a, rb.agent AS agent_b, ra.task AS task,
               CASE p.choice WHEN 'a' THEN p.run_a WHEN 'b' THEN p.run_b END AS winner
        FROM preferences p JOIN runs ra ON ra.run_id = p.run_a JOIN runs rb ON rb.run_id = p.run_b
        WHERE (?::VARCHAR IS NULL OR p.queue_id = ?)
          AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], p.author))
        ORDER BY p.created_at, p.pref_id
        """, [queue_id, queue_id, list(authors) if authors is not None else None,
              list(authors) if authors is not None else None])


def same_task_pairs(store: Store, *, agents: Sequence[str] | None = None, limit: int = 100,
                    seed: int = 0) -> list[tuple[str, str]]:
    """Pairs of runs of the same task by different agents (or releases), for a pairwise queue: at most
    one pair per task and agent pair, sides shuffled so neither agent is always shown on the left."""
    rows = store.execute(
        """
        SELECT a.run_id, b.run_id FROM runs a JOIN runs b ON a.task = b.task AND a.agent < b.agent
        WHERE a.task IS NOT NULL AND (?::VARCHAR[] IS NULL OR (list_contains(?::VARCHAR[], a.agent)
                                                               AND list_contains(?::VARCHAR[], b.agent)))
        QUALIFY row_number() OVER (PARTITION BY a.task, a.agent, b.agent ORDER BY hash(a.run_id || b.run_id || ?)) = 1
        ORDER BY hash(a.run_id || b.run_id || ?) LIMIT ?
        """, [*[list(agents) if agents else None] * 3, str(seed), str(seed), limit])
    return [(a, b) if hashlib.sha1(f"{a}|{b}|{seed}".encode()).digest()[0] % 2 == 0 else (b, a) for a, b in rows]
