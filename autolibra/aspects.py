"""Aspects: one behaviour a person pointed at, with its sign and the steps it concerns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from traces.store import Store, only_in


@dataclass(frozen=True)
class Aspect:
    aspect_id: str
    feedback_id: str
    run_id: str
    idx: int
    bullet: str
    behaviour: str
    sign: int  # +1 praised, -1 criticised
    steps: tuple[int, ...] = ()
    steps_given: bool = False
    focus: str | None = None
    metadata: dict = field(default_factory=dict)

    def text(self) -> str:
        """What gets embedded for clustering: the behaviour, and the bullet when it adds to it."""
        return self.behaviour if self.bullet.strip() in self.behaviour else f"{self.behaviour} — {self.bullet}"


def aspect_id(feedback_id: str, idx: int, backend: str) -> str:
    return hashlib.sha1(f"{feedback_id}/{idx}/{backend}".encode()).hexdigest()[:20]


def save_aspects(store: Store, aspects: list[Aspect], backend: str) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    ids = sorted({a.feedback_id for a in aspects})
    with store.transaction() as con:
        con.execute("DELETE FROM aspects WHERE backend = ? AND feedback_id IN (SELECT unnest(?::VARCHAR[]))",
                    [backend, ids])
        con.executemany(
            "INSERT INTO aspects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[a.aspect_id, a.feedback_id, a.run_id, backend, a.idx, a.bullet, a.behaviour, a.sign, list(a.steps),
              a.steps_given, a.focus, json.dumps(a.metadata, default=str), now] for a in aspects])


def load_aspects(store: Store, backend: str, feedback_ids: list[str] | None = None) -> list[Aspect]:
    sql = ("SELECT aspect_id, feedback_id, run_id, idx, bullet, behaviour, sign, steps, steps_given, focus, metadata "
           "FROM aspects WHERE backend = ?")
    clause, params = only_in("feedback_id", feedback_ids)
    return [Aspect(r[0], r[1], r[2], r[3], r[4], r[5], int(r[6]), tuple(r[7] or ()), bool(r[8]), r[9],
                   json.loads(r[10]) if r[10] else {})
            for r in store.execute(sql + clause + " ORDER BY run_id, feedback_id, idx", [backend, *params])]
