"""Jobs: long work over many items that survives failures, budgets and restarts.

A job is identified by its kind and parameters; opening the same job again
resumes it, skipping items already done (failed items are tried again). Each
item's state is committed as it finishes, so a crash loses at most the items
in flight, and their LLM answers are in the response cache anyway.

A job records the process working on it and a heartbeat (traces/owner.py).
One whose process is gone is *abandoned*, not running, and the next run with
the same parameters takes it over. Two processes running the same job at once
share it: each claims the items it is about to do (`claim`), and leaves the
items a live process has claimed to that process.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from traces import owner
from traces.store import Store, merge, retrying

# Without a heartbeat for this long, a job or claim of a process on another machine is abandoned.
LEASE = timedelta(minutes=10)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def status_now(status: str, who: str | None, heartbeat: datetime | None, now: datetime | None = None) -> str:
    """A job's status as it is: `running` with its process gone is `abandoned`."""
    if status == "running" and owner.gone(who, heartbeat, LEASE, now or _now()):
        return "abandoned"
    return status


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
        me, now = owner.current(), _now()

        def go() -> Job:
            with store.transaction(serialise="jobs") as con:
                if resume:
                    row = con.execute(
                        "SELECT job_id FROM jobs WHERE kind = ? AND params_hash = ? AND status != 'done' "
                        "ORDER BY started_at DESC LIMIT 1", [kind, ph]).fetchone()
                    if row:
                        # a live process running it keeps it; this one joins (see `claim`)
                        con.execute("UPDATE jobs SET status = 'running', max_cost = ?, error = NULL, "
                                    "ended_at = NULL, owner = ?, heartbeat_at = ? WHERE job_id = ?",
                                    [max_cost, me, now, row[0]])
                        return cls(store, row[0], kind, max_cost, resumed=True)
                job_id = f"{kind}-{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
                con.execute("INSERT INTO jobs (job_id, kind, params_hash, params, status, max_cost, started_at, "
                            "owner, heartbeat_at) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                            [job_id, kind, ph, json.dumps(params, default=str), max_cost, now, me, now])
            return cls(store, job_id, kind, max_cost)
        return retrying(go)

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

    def claim(self, keys: list[str]) -> list[str]:
        """The keys this process may do now, claimed for it: not done, and not held by a live process."""
        if not keys:
            return []
        me = owner.current()

        def go() -> list[str]:
            now = _now()
            with self.store.transaction(serialise="job_items") as con:
                held = con.execute(
                    "SELECT item_key, status, owner, updated_at FROM job_items WHERE job_id = ? "
                    "AND item_key IN (SELECT unnest(?::VARCHAR[]))", [self.job_id, keys]).fetchall()
                busy = {k for k, st, who, at in held
                        if st == "done" or (st == "claimed" and who != me and not owner.gone(who, at, LEASE, now))}
                mine = [k for k in keys if k not in busy]
                self._write_items(con, mine, "claimed", None, now, me)
                return mine
        return retrying(go)

    def _write_items(self, con, keys: list[str], status: str, error: str | None, now: datetime, me: str) -> None:
        rows = [[self.job_id, k, status, (error or "")[:2000] or None, now, me] for k in keys]
        merge(con, "job_items", rows, keys=["job_id", "item_key"], update=["status", "error", "updated_at", "owner"],
              columns=["job_id", "item_key", "status", "error", "updated_at", "owner"])
        # the job's heartbeat: written with every batch of items this process finishes or takes
        con.execute("UPDATE jobs SET heartbeat_at = ?, owner = ? WHERE job_id = ?", [now, me, self.job_id])

    def mark(self, keys: list[str] | str, status: str, error: str | None = None) -> None:
        keys = [keys] if isinstance(keys, str) else keys
        if not keys:
            return
        me, now = owner.current(), _now()
        self.store.write(lambda con: self._write_items(con, keys, status, error, now, me))

    def finish(self, status: str = "done", error: str | None = None, total: int | None = None) -> dict:
        """Close this process's part of the job; the job stays `running` while a live process holds items."""
        me, now = owner.current(), _now()

        def go(status: str) -> tuple[str, int, int, float]:
            with self.store.transaction() as con:
                done, failed = con.execute(
                    "SELECT count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status = 'failed') "
                    "FROM job_items WHERE job_id = ?", [self.job_id]).fetchone()
                others = [who for who, at in con.execute(
                    "SELECT owner, updated_at FROM job_items WHERE job_id = ? AND status = 'claimed'",
                    [self.job_id]).fetchall() if who != me and not owner.gone(who, at, LEASE, now)]
                if others and status == "done":
                    # another process is still on it: the job is its own now, and it finishes it
                    con.execute("UPDATE jobs SET owner = ?, heartbeat_at = ? WHERE job_id = ?",
                                [others[0], now, self.job_id])
                    status = "running"
                cost = con.execute("SELECT coalesce(sum(cost_usd), 0) FROM llm_calls WHERE job_id = ?",
                                   [self.job_id]).fetchone()[0]
                con.execute(
                    "UPDATE jobs SET status = ?, error = ?, ended_at = ?, items_done = ?, items_failed = ?, "
                    "cost_usd = ?, items_total = coalesce(?, items_total) WHERE job_id = ?",
                    [status, error, None if status == "running" else now, done, failed, cost, total, self.job_id])

                return status, done, failed, cost
        status, done, failed, cost = retrying(lambda: go(status))
        return {"job_id": self.job_id, "status": status, "done": done, "failed": failed, "cost_usd": cost,
                "error": error}


def jobs(store: Store, limit: int = 50):
    """Recent jobs, newest first, with their status as it is (`abandoned` when their process is gone)."""
    df = store.df(
        "SELECT job_id, kind, status, items_done, items_failed, items_total, cost_usd, started_at, ended_at, "
        "owner, heartbeat_at FROM jobs ORDER BY started_at DESC LIMIT ?", [limit])
    now = _now()
    df["status"] = [status_now(s, who, beat if beat == beat else None, now)
                    for s, who, beat in zip(df["status"], df["owner"], df["heartbeat_at"], strict=True)]
    return df
