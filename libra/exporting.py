"""Training data out: selected runs as Agent Data Protocol trajectories, their verdicts carried along.

    libra.export_adp(store, "sft.jsonl", where="confirm_before_booking = 1 and reward >= 1")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from metrics.selection import select_runs, verdicts
from traces import adp
from traces.export import iter_runs_with_ids
from traces.store import Store


@dataclass(frozen=True)
class Exported:
    path: str
    runs: int
    selected: int


def _notes(run: Any) -> list[dict[str, Any]]:
    return [{"author": f.author, "text": f.text, "steps": list(f.steps), "rating": f.rating}
            for f in run.feedback]


def export_adp(store: Store, path: str | os.PathLike[str], *, where: str | None = None, agent: str | None = None,
               fmt: str | None = None, since: str | None = None, limit: int | None = None, with_feedback: bool = True,
               progress: Callable[[int, int], None] | None = None) -> Exported:
    """Write the runs meeting `where` (see `metrics.selection`) as ADP trajectories, each validated
    against ADP's schema, with every metric's newest verdict (and people's notes) in `details`.

    `.jsonl` writes one trajectory per line; any other name one JSON array. Raises
    `metrics.selection.BadCondition` for a condition that names no metric or field.
    """
    ids = select_runs(store, where, agent=agent, fmt=fmt, since=since, limit=limit)
    done = 0

    def trajectories() -> Iterator[dict[str, Any]]:
        for start in range(0, len(ids), 500):
            page = ids[start:start + 500]
            judged = verdicts(store, page)
            for run_id, run in iter_runs_with_ids(store, run_ids=page):
                details: dict[str, Any] = {"libra_scores": judged.get(run_id, {})}
                if with_feedback and run.feedback:
                    details["libra_feedback"] = _notes(run)
                yield adp.trajectory(run, run_id, details)

    for _ in adp.write(trajectories(), path):
        done += 1
        if progress and (done % 100 == 0 or done == len(ids)):
            progress(done, len(ids))
    return Exported(str(path), done, len(ids))
