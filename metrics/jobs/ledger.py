"""Jobs: long work over many items that survives failures, budgets and restarts.

A job is identified by its kind and parameters; opening the same job again
resumes it, skipping items already done (failed items are tried again). Each
item's state is committed as it finishes, so a crash loses at most the items
in flight, and their LLM answers are in the response cache anyway.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from traces.store import Store, merge


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Job:
    store: Store
    job_id: str
    kind: str
    max_cost: float | None
    resumed: bool = False

    @classmethod
    def open(cls, store: Store, kind: str, params: dict, max_cost: float | None = None,
             resume: bool = True) -> Job:
        ph = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
        with store.transaction() as con:
            if resume:
                row = con.execute(
                    "SELECT job_id FROM jobs WHERE kind = ? AND params_hash = ? AND status != 'done' "
                    "ORDER BY started_at DESC LIMIT 1", [kind, ph]).fetchone()
                if row:
                    con.execute("UPDATE jobs SET status = 'running', max_cost = ?, error = NULL, ended_at = NULL "
                                "WHERE job_id = ?", [max_cost, row[0]])
                    return cls(store, row[0], kind, max_cost, resumed=True)
            job_id = f"{kind}-{_now():%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
            con.execute("INSERT INTO jobs (job_id, kind, params_hash, params, status, max_cost, started_at) "
                        "VALUES (?, ?, ?, ?, 'running', ?, ?)",
                        [job_id, kind, ph, json.dumps(params, default=str), max_cost, _now()])
        return cls(store, job_id, kind, max_cost)

    def spent(self) -> float:
        return self.store.scalar("SELECT coalesce(sum(cost_usd), 0) FROM llm_calls WHERE job_id = ?",
                                 [self.job_id]) or 0.0

    def pending(self, keys: list[str]) -> list[str]:
        done = {k for k, in self.store.execute(
            "SELECT item_key FROM job_items WHERE job_id = ? AND status = 'done'", [self.job_id])}
        return [k for k in keys if k not in done]

    def in_batch(self) -> dict[str, list[str]]:
        """Batches submitted before a stop, by batch id, with their item keys."""
        out: dict[str, list[str]] = {}
        for key, batch in self.store.execute(
                "SELECT item_key, error FROM job_items WHERE job_id = ? AND status = 'in_batch'", [self.job_id]):
            out.setdefault(batch, []).append(key)
        return out

    def mark(self, keys: list[str] | str, status: str, error: str | None = None) -> None:
        keys = [keys] if isinstance(keys, str) else keys
        if not keys:
            return
        rows = [[self.job_id, k, status, (error or "")[:2000] or None, _now()] for k in keys]
        self.store.write(lambda con: merge(con, "job_items", rows, keys=["job_id", "item_key"],
                                           update=["status", "error", "updated_at"],
                                           columns=["job_id", "item_key", "status", "error", "updated_at"]))

    def finish(self, status: str = "done", error: str | None = None, total: int | None = None) -> dict:
        with self.store.transaction() as con:
            done, failed = con.execute(
                "SELECT count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status = 'failed') "
                "FROM job_items WHERE job_id = ?", [self.job_id]).fetchone()
            cost = con.execute("SELECT coalesce(sum(cost_usd), 0) FROM llm_calls WHERE job_id = ?",
                               [self.job_id]).fetchone()[0]
            con.execute(
                "UPDATE jobs SET status = ?, error = ?, ended_at = ?, items_done = ?, items_failed = ?, "
                "cost_usd = ?, items_total = coalesce(?, items_total) WHERE job_id = ?",
                [status, error, _now(), done, failed, cost, total, self.job_id])
        return {"job_id": self.job_id, "status": status, "done": done, "failed": failed, "cost_usd": cost,
                "error": error}
