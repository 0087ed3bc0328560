"""A write-ahead journal for people's edits, beside the DuckDB store.

DuckDB lets one process hold the database file at a time; an annotator's
save must never wait on an ingest or fail with a lock error. So app writes
are appended to a small SQLite file in WAL mode first (safe for many
writers, durable in milliseconds) and then applied to DuckDB in batches by
whichever Libra process next holds the file. Applying is idempotent, so
two processes applying the same entries, or a crash half way, changes
nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

_local = threading.local()


class Journal:
    def __init__(self, store_path: str):
        self.path = None if store_path == ":memory:" else f"{store_path}.journal.sqlite"
        self._mem: list[tuple[int, str, dict]] = []  # for in-memory stores: no file to share
        self._seq = 0
        self._lock = threading.Lock()
        if self.path:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            with self._con() as con:
                con.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                            "kind TEXT NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL, "
                            "applied INTEGER NOT NULL DEFAULT 0)")
                con.execute("CREATE INDEX IF NOT EXISTS events_pending ON events (applied, seq)")

    def _con(self) -> sqlite3.Connection:
        cons = getattr(_local, "cons", None)
        if cons is None:
            cons = _local.cons = {}
        con = cons.get(self.path)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            cons[self.path] = con
        return con

    def append(self, kind: str, payload: dict) -> int:
        if self.path is None:
            with self._lock:
                self._seq += 1
                self._mem.append((self._seq, kind, payload))
                return self._seq
        con = self._con()
        cur = con.execute("INSERT INTO events (kind, payload, created) VALUES (?, ?, ?)",
                          [kind, json.dumps(payload, default=str), time.time()])
        return int(cur.lastrowid)

    def pending(self, limit: int = 5000) -> list[tuple[int, str, dict]]:
        if self.path is None:
            with self._lock:
                return list(self._mem[:limit])
        rows = self._con().execute("SELECT seq, kind, payload FROM events WHERE applied = 0 ORDER BY seq LIMIT ?",
                                   [limit]).fetchall()
        return [(s, k, json.loads(p)) for s, k, p in rows]

    def mark_applied(self, seqs: list[int]) -> None:
        if not seqs:
            return
        if self.path is None:
            done = set(seqs)
            with self._lock:
                self._mem = [e for e in self._mem if e[0] not in done]
            return
        con = self._con()
        con.executemany("UPDATE events SET applied = 1 WHERE seq = ?", [[s] for s in seqs])

    def backlog(self) -> int:
        if self.path is None:
            return len(self._mem)
        return self._con().execute("SELECT count(*) FROM events WHERE applied = 0").fetchone()[0]
