"""The DuckDB store: opening, migrating, and sharing one database file.

DuckDB lets a single process hold a database file at a time. Libra's app,
CLI jobs and schedulers all share one file, so every access here takes the
file only for as long as it needs it: a read or a write transaction opens the
database (or joins this process's already open instance), does its work and
lets go. A process that finds the file held by another retries with backoff
for `lock_timeout` seconds before it reports the store as busy. Long jobs
write in batches, so other processes get their turn between batches.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from traces import schema

DEFAULT_DB = "libra.duckdb"


def default_db_path() -> str:
    return os.environ.get("LIBRA_DB") or DEFAULT_DB


class StoreBusy(RuntimeError):
    """The database file stayed locked by another process for longer than allowed."""


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


class _Shared:
    """One open DuckDB instance per file per process, shared by threads."""

    __slots__ = ("con", "refs", "lock")

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self.refs = 0
        # DuckDB runs one write transaction per connection; threads serialise here.
        self.lock = threading.RLock()


_registry: dict[str, _Shared] = {}
_registry_lock = threading.Lock()


class Store:
    """A Libra store backed by one DuckDB file (or `:memory:`)."""

    def __init__(self, path: str | os.PathLike | None = None, *, lock_timeout: float = 60.0):
        raw = str(path) if path is not None else default_db_path()
        self.path = raw if raw == ":memory:" else str(Path(raw).expanduser().resolve())
        self.lock_timeout = lock_timeout
        self._mem: duckdb.DuckDBPyConnection | None = None
        self._holds = 0
        if self.path == ":memory:":
            self._mem = duckdb.connect(":memory:")
            self._mem.execute("SET python_enable_replacements = false")
            schema.migrate(self._mem)
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    # -- connection lifecycle -------------------------------------------------

    def _open(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.01
        while True:
            try:
                con = duckdb.connect(self.path)
                break
            except duckdb.IOException as exc:
                if not _is_lock_error(exc) or time.monotonic() >= deadline:
                    if _is_lock_error(exc):
                        raise StoreBusy(
                            f"{self.path} stayed locked by another process for "
                            f"{self.lock_timeout:.0f}s; is a long job holding it?"
                        ) from exc
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)
        try:
            # A missing table must be an error, never a Python variable of that name.
            con.execute("SET python_enable_replacements = false")
            schema.migrate(con)
        except Exception:
            con.close()
            raise
        return con

    @contextmanager
    def _shared(self) -> Iterator[_Shared]:
        if self._mem is not None:
            yield _MEM_SHARED.setdefault(id(self), _Shared(self._mem))
            return
        with _registry_lock:
            shared = _registry.get(self.path)
            if shared is None:
                shared = _Shared(self._open())
                _registry[self.path] = shared
            shared.refs += 1
        try:
            yield shared
        finally:
            with _registry_lock:
                shared.refs -= 1
                if shared.refs == 0:
                    _registry.pop(self.path, None)
                    shared.con.close()

    @contextmanager
    def hold(self) -> Iterator[Store]:
        """Keep the file open across many operations (faster; blocks other processes)."""
        with self._shared():
            yield self

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the store for reads; the file is released when the block ends."""
        with self._shared() as shared:
            cur = shared.con.cursor()
            try:
                yield cur
            finally:
                cur.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction: committed when the block ends, rolled back on error."""
        with self._shared() as shared, shared.lock:
            cur = shared.con.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                cur.close()
                raise
            cur.execute("COMMIT")
            cur.close()

    # -- convenience ----------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | dict | None = None) -> list[tuple]:
        with self.connection() as con:
            return con.execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] | dict | None = None) -> Any:
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    def df(self, sql: str, params: Sequence[Any] | dict | None = None):
        with self.connection() as con:
            return con.execute(sql, params or []).df()

    def schema_version(self) -> int:
        with self.connection() as con:
            return schema.current_version(con)

    def counts(self) -> dict[str, int]:
        with self.connection() as con:
            return {
                t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 fixed names
                for t in ("runs", "steps", "feedback", "quarantine")
            }

    def close(self) -> None:
        if self._mem is not None:
            self._mem.close()
            _MEM_SHARED.pop(id(self), None)
            self._mem = None


_MEM_SHARED: dict[int, _Shared] = {}


def open_store(path: str | os.PathLike | None = None, **kw) -> Store:
    return Store(path, **kw)
