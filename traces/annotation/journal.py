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

from traces.schema import JOURNAL_DDL
from traces.changes import FileVersion, files_version

_local = threading.local()


class Journal:
    def __init__(self, store_path: str):
        self.path = None if store_path == ":memory:" else f"{store_path}.journal.sqlite"
        self._mem: list[tuple[int, str, dict]] = []  # for in-memory stores: no file to share
        self._seq = 0
        self._lock = threading.Lock()
        if self.path:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._retry(lambda con: [con.execute(sql) for sql in JOURNAL_DDL])

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

    def _retry(self, op, attempts: int = 60):
        # WAL writers can get SQLITE_BUSY without the busy handler being used
        # (a read snapshot that must upgrade, or a checkpoint in progress), so
        # a save retries with backoff rather than surfacing "database is locked".
        delay = 0.005
        for i in range(attempts):
            try:
                return op(self._con())
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or i == attempts - 1:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def version(self) -> FileVersion | None:
        """What changes whenever anything is written to the journal, from any process; None where unknown.

        SQLite in WAL mode appends each commit to `<file>-wal` (and folds it back at checkpoints),
        so the two files' stats move with every write, as the store's own do (`Store.data_version`).
        """
        return None if self.path is None else files_version(self.path, self.path + "-wal")

    def append(self, kind: str, payload: dict) -> int:
        if self.path is None:
            with self._lock:
                self._seq += 1
                self._mem.append((self._seq, kind, payload))
                return self._seq
        row = [kind, json.dumps(payload, default=str), time.time()]
        return self._retry(lambda con: int(con.execute(
            "INSERT INTO events (kind, payload, created) VALUES (?, ?, ?)", row).lastrowid))

    def pending(self, limit: int = 5000) -> list[tuple[int, str, dict]]:
        if self.path is None:
            with self._lock:
                return list(self._mem[:limit])
        rows = self._retry(lambda con: con.execute(
            "SELECT seq, kind, payload FROM events WHERE applied = 0 ORDER BY seq LIMIT ?", [limit]).fetchall())
        return [(s, k, json.loads(p)) for s, k, p in rows]

    def events_for(self, feedback_id: str) -> list[tuple[int, str, dict]]:
        """Every event of one note, applied or not, in order (a file journal keeps them all)."""
        if self.path is None:
            with self._lock:
                return [e for e in self._mem if e[2].get("feedback_id") == feedback_id]
        rows = self._retry(lambda con: con.execute(
            "SELECT seq, kind, payload FROM events WHERE json_extract(payload, '$.feedback_id') = ? ORDER BY seq",
            [feedback_id]).fetchall())
        return [(s, k, json.loads(p)) for s, k, p in rows]

    def mark_applied(self, seqs: list[int]) -> None:
        if not seqs:
            return
        if self.path is None:
            done = set(seqs)
            with self._lock:
                self._mem = [e for e in self._mem if e[0] not in done]
            return
        def mark(con):
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany("UPDATE events SET applied = 1 WHERE seq = ?", [[s] for s in seqs])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        self._retry(mark)

    def backlog(self) -> int:
        if self.path is None:
            return len(self._mem)
        return self._retry(lambda con: con.execute("SELECT count(*) FROM events WHERE applied = 0").fetchone()[0])
