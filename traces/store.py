"""The store: opening, migrating, and sharing one database.

Two backends, chosen by one setting (`LIBRA_STORE`, else `LIBRA_DB`, else
`./libra.duckdb`):

- a local DuckDB file (`PATH`, `duckdb:PATH` or `:memory:`), the default;
- DuckLake with a PostgreSQL catalog (`ducklake:postgres:LIBPQ-CONNINFO`,
  e.g. `ducklake:postgres:dbname=libra host=db user=libra data=s3://bucket/libra/`),
  Parquet data under `data=` (a local folder or object storage; default
  `./libra_lake/`). Many processes on many machines read and write it at
  once; DuckLake commits each transaction as a snapshot and retries the ones
  that do not truly conflict.

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
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import pyarrow as pa

from traces import changes, locks, migrate, recovery
from traces.changes import FileVersion, files_version
from traces.ducklake import connect_lake, is_lake, lake_parts

if TYPE_CHECKING:  # DuckDB imports pandas itself when a frame is asked for; parsing processes never ask
    import pandas as pd

T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any] | None
DEFAULT_DB = "libra.duckdb"


def default_db_path() -> str:
    return os.environ.get("LIBRA_STORE") or os.environ.get("LIBRA_DB") or DEFAULT_DB


def retrying(fn: Callable[[], T], attempts: int = 50) -> T:
    """Run a transaction again when a concurrent commit on a lake conflicted with it.

    DuckLake checks conflicts when a transaction commits; the loser is rolled
    back whole, so running it again from the start is always safe.
    """
    for i in range(attempts):
        try:
            return fn()
        except duckdb.TransactionException:
            if i == attempts - 1:
                raise
            time.sleep(min(0.05 * 1.5 ** i, 2.0) * (0.5 + random.random()))
    raise AssertionError("unreachable")


# Stores this process has already brought up to date. Like an application server checking its
# schema at start-up, a process checks each store once: the check cost a quarter of every open.
# A store upgraded by a newer Libra while this process runs is noticed by the next process.
_checked: set[tuple[Any, ...]] = set()
_checked_lock = threading.Lock()


def _store_key(path: str, lake: bool) -> tuple[Any, ...]:
    if lake:
        return (path,)
    st = os.stat(path)  # the file itself: a store deleted and made again is another one
    return (path, st.st_dev, st.st_ino)


def _migrate_once(con: duckdb.DuckDBPyConnection, path: str, lake: bool = False, created: bool = False) -> None:
    key = _store_key(path, lake)
    if key in _checked and not created:
        return
    migrate.migrate(con, lake=lake)
    with _checked_lock:
        _checked.add(key)


class StoreBusy(RuntimeError):
    """The database file stayed locked by another process for longer than allowed."""


class NotAStore(ValueError):
    """The location names no Libra store: a file of another kind, or nothing where one must exist."""


DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file


def check_store_file(path: str) -> None:
    """Refuse a file that is not a DuckDB database before DuckDB opens it.

    DuckDB 1.5 opens a JSON, CSV or Parquet file given as a database as a
    read-only catalog of one view, so `--db traces.jsonl` would silently
    write nowhere.
    """
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return
    if os.path.isdir(path):
        raise NotAStore(f"{path} is a folder, not a Libra store; name a .duckdb file in it")
    with open(path, "rb") as f:
        head = f.read(12)
    if head[8:12] != DUCKDB_MAGIC:
        raise NotAStore(f"{path} is not a Libra store (not a DuckDB database file); "
                        "pass the store with --db and the files to read as arguments")


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


class _LazyHold:
    __slots__ = ("stack", "opened")

    def __init__(self) -> None:
        self.stack, self.opened = ExitStack(), False


_thread = threading.local()


def _lazy_holds() -> dict[str, list[_LazyHold]]:
    """This thread's open lazy holds by file, outermost first. Per thread and file, not per Store:
    a page makes its own Store for the file its app run holds, and should read through that hold."""
    holds = getattr(_thread, "holds", None)
    if holds is None:
        holds = _thread.holds = {}
    return holds


_registry: dict[str, _Shared] = {}
_registry_lock = threading.Lock()


class Store:
    """A Libra store backed by one DuckDB file (or `:memory:`)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_timeout: float = 60.0,
                 create: bool = True):
        """`create=False` for readers: a file store that does not exist yet is an error, not a new store."""
        raw = str(path) if path is not None else default_db_path()
        if raw.startswith("duckdb:"):
            raw = raw[len("duckdb:"):]
        self.lake = is_lake(raw)
        self.path = raw if raw == ":memory:" or self.lake else str(Path(raw).expanduser().resolve())
        self.lock_timeout = lock_timeout
        self._mem: duckdb.DuckDBPyConnection | None = None
        self.new = False  # set below: whether this opens a file that does not exist yet
        if self.path == ":memory:":
            self._mem = duckdb.connect(":memory:")
            self._mem.execute("SET python_enable_replacements = false")
            migrate.migrate(self._mem)
        elif not self.lake:
            # Reading the file's first bytes opens and closes it, and on POSIX closing any
            # descriptor of a file drops every lock this process holds on it, DuckDB's
            # included: another process could then open the store beside this one's open
            # instance and both would write it. So only a file this process does not have
            # open is read, under the lock that guards opening it.
            with _registry_lock:
                if self.path not in _registry:
                    check_store_file(self.path)
            if not create and not os.path.exists(self.path):
                raise NotAStore(f"no store at {self.path}; `libra ingest` or `libra demo build` makes one")
            self.new = not os.path.exists(self.path)
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    def __getstate__(self) -> dict[str, Any]:
        """A store travels to another process (a Ray worker) as its location; it opens there."""
        if self._mem is not None:
            raise TypeError("an in-memory store cannot be sent to another process")
        return {"path": self.path, "lake": self.lake, "lock_timeout": self.lock_timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.lake, self.lock_timeout = state["path"], state["lake"], state["lock_timeout"]
        self._mem, self.new = None, False

    @property
    def local_dir(self) -> Path:
        """Where this process keeps files that go with the store (journal, models)."""
        if self.lake:
            _, data = lake_parts(self.path)
            return Path(data) if "://" not in data else Path.cwd()
        return Path.cwd() if self.path == ":memory:" else Path(self.path).parent

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    # -- connection lifecycle -------------------------------------------------

    def _open(self) -> duckdb.DuckDBPyConnection:
        if self.lake:
            con = connect_lake(self.path)
            try:
                con.execute("SET python_enable_replacements = false")
                _migrate_once(con, self.path, lake=True)
                recovery.recover(con)
            except Exception:
                con.close()
                raise
            return con
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.01
        created = not os.path.exists(self.path)
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
            _migrate_once(con, self.path, created=created)
            # Every time the file is taken (not once per process like migrations): another
            # process may have been killed inside a commit since. One read of a tiny table.
            recovery.recover(con)
        except Exception:
            con.close()
            raise
        return con

    @contextmanager
    def _shared(self) -> Iterator[_Shared]:
        holds = _lazy_holds().get(self.path) if self._mem is None else None
        if holds and not holds[0].opened:  # the first statement opens the file for the outermost lazy hold
            holds[0].stack.enter_context(self._shared_now())
            holds[0].opened = True  # not before: a busy file is tried again by the next statement
        with self._shared_now() as shared:
            yield shared

    @contextmanager
    def _shared_now(self) -> Iterator[_Shared]:
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
                # A lake holds no file lock, so its connection (extensions loaded, catalog
                # attached) is kept for the life of the process.
                if shared.refs == 0 and not self.lake:
                    _registry.pop(self.path, None)
                    self._release(shared.con)

    def _release(self, con: duckdb.DuckDBPyConnection) -> None:
        # The fold (here or in DuckDB's close) compresses the last transaction's rows with a buffer per
        # thread, and it is the peak of a process that writes in batches: an ingest of 1M OTLP spans
        # peaked 684-704 MB with two threads, 636-648 MB with one, at the same CPU (bench/ingest.py's
        # sampler, alternated). Nothing else runs on a connection being let go.
        with suppress(duckdb.Error):
            con.execute("SET threads = 1")

        def fold() -> FileVersion:
            con.execute("CHECKPOINT")
            return self._files()
        try:
            changes.settle(self.path, self._files(), fold)
        except duckdb.Error:
            pass  # DuckDB folds the log as it closes instead: kept answers are then computed once more
        finally:
            con.close()

    def _cursor(self, shared: _Shared) -> duckdb.DuckDBPyConnection:
        cur = shared.con.cursor()
        if self.lake:  # a cursor starts in the in-memory catalog, not the attached lake
            cur.execute(f"USE {locks.LAKE_CATALOG}")
            cur.execute("SET python_enable_replacements = false")
        return cur

    def data_version(self, ignoring: Collection[str] = ()) -> Hashable | None:
        """What changes whenever a transaction commits to this file, from any process; None where unknown.

        DuckDB appends each commit to `<file>.wal` and folds the log into the file when
        the last connection closes (or the log grows large), so the two files' identities,
        sizes and modification times move with every commit; reading changes neither. Two stats,
        no open: callers use it to keep answers until the data changes. `ignoring`: kinds of
        data (`transaction(touches=...)`) whose commits by this process leave it as it was,
        for answers that read none of them (`traces.changes`). A lake's commits go to its
        catalog and a memory store has no file: None, nothing to key by.
        """
        if self.lake or self._mem is not None:
            return None
        return changes.version(self.path, self._files(), ignoring)

    def _files(self) -> FileVersion:
        return files_version(self.path, self.path + ".wal")  # the log last: `changes.settle` looks there

    @contextmanager
    def hold(self, lazy: bool = False) -> Iterator[Store]:
        """Keep the file open across many operations (faster; blocks other processes).

        `lazy`: opened by the first statement inside the block, not by the block. The app
        holds the store for each rerun, and a rerun whose reads all come from memory then
        neither opens the file (~30 ms on a 100k-run store, with the close) nor takes its lock.
        """
        if not lazy:
            with self._shared():
                yield self
            return
        holds = _lazy_holds().setdefault(self.path, [])
        keep = _LazyHold()
        holds.append(keep)
        try:
            yield self
        finally:
            holds.remove(keep)
            keep.stack.close()

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the store for reads; the file is released when the block ends."""
        with self._shared() as shared:
            cur = self._cursor(shared)
            try:
                yield cur
            finally:
                cur.close()

    @contextmanager
    def transaction(self, serialise: str | None = None, touches: str | None = None,
                    threads: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction: committed when the block ends, rolled back on error.

        `serialise` names a lock (`schema.LOCKS`) for writes that must not run side
        by side with others of their kind, such as adding runs: without keys, two
        lake transactions inserting the same new run would both succeed. Each such
        transaction rewrites its lock table's row, so on a lake concurrent ones
        conflict and the loser, run again (`retrying`), sees what the winner wrote.
        A DuckDB file needs nothing: one process writes it at a time.

        `touches` names the one kind of data the transaction writes (such as "feedback"), so
        answers kept in memory that read none of it survive the commit (`data_version`).

        `threads`: DuckDB's threads for the transaction, its commit included (a commit that
        folds the log into the file compresses with a buffer per thread); reset after it.
        """
        with self._shared() as shared, shared.lock:
            accounted = not self.lake and self._mem is None
            before = self._files() if accounted else ()
            cur = self._cursor(shared)
            if threads is not None:
                cur.execute(f"SET threads = {int(threads)}")
            try:
                cur.execute("BEGIN TRANSACTION")
                try:
                    if serialise is not None and self.lake:
                        cur.execute(locks.lock_statement(serialise))
                    yield cur
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
            finally:
                if threads is not None:
                    with suppress(duckdb.Error):  # never in place of the error that ended the block
                        cur.execute("RESET threads")
                cur.close()
            if accounted:
                changes.committed(self.path, before, self._files(), touches)

    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T], serialise: str | None = None,
              touches: str | None = None) -> T:
        """fn(con) in one write transaction, run again if it lost a conflict on a lake.

        Use it for anything that upserts (`merge`): a lake detects the clash
        between two processes writing the same key only when they commit, and
        the loser must start over to see the winner's rows.
        """
        def once() -> T:
            with self.transaction(serialise, touches) as con:
                return fn(con)
        return retrying(once)

    # -- convenience ----------------------------------------------------------

    def execute(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        with self.connection() as con:
            return con.execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params: Params = None) -> Any:
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    def df(self, sql: str, params: Params = None) -> pd.DataFrame:
        with self.connection() as con:
            return con.execute(sql, params or []).df()

    def schema_version(self) -> int:
        with self.connection() as con:
            return migrate.current_version(con)

    def counts(self) -> dict[str, int]:
        with self.connection() as con:
            return {
                t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0])  # noqa: S608 fixed names
                for t in ("runs", "steps", "feedback", "quarantine")
            }

    def close(self) -> None:
        if self.lake:
            with _registry_lock:
                shared = _registry.get(self.path)
                if shared is not None and shared.refs == 0:
                    _registry.pop(self.path)
                    shared.con.close()
        if self._mem is not None:
            self._mem.close()
            _MEM_SHARED.pop(id(self), None)
            self._mem = None


_MEM_SHARED: dict[int, _Shared] = {}


def only_in(column: str, values: Sequence[str] | None) -> tuple[str, list[Any]]:
    """`' AND column IN (...)'` and its parameter, or nothing when `values` is None (no filter).

    `column` is Libra's own name, never input.
    """
    if values is None:
        return "", []
    return f" AND {column} IN (SELECT unnest(?::VARCHAR[]))", [list(values)]


def merge(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table | Sequence[Sequence[Any]], keys: Sequence[str],
          update: Sequence[str] = (), columns: Sequence[str] | None = None) -> None:
    """Insert rows whose key is new; for known keys set the `update` columns (or leave the row).

    The portable upsert: a DuckLake table has no keys for ON CONFLICT to use, so
    both backends write through MERGE INTO. Run it inside `Store.write`, which
    retries a transaction that a concurrent lake commit conflicted with. `rows` is an Arrow table or a list
    of rows in `columns` order (later rows win over earlier ones with the same
    key). Table and column names are Libra's own, never input.
    """
    if isinstance(rows, pa.Table):
        src = rows
    else:
        if not rows:
            return
        if columns is None:
            raise ValueError("rows given as lists need their columns")
        pos = [columns.index(k) for k in keys]
        last = {tuple(r[i] for i in pos): r for r in rows}
        src = pa.table({c: [r[i] for r in last.values()] for i, c in enumerate(columns)})
    if src.num_rows == 0:
        return
    if locks.on_lake(con):
        # No key stops two lake transactions inserting the same new key; rewriting the
        # table's lock row makes them conflict, and the loser's retry sees the winner's row.
        con.execute(locks.lock_statement(table))
    cols = src.column_names
    name = f"_libra_merge_{table}"
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    sql = f"MERGE INTO {table} AS t USING (SELECT * FROM {name}) AS s ON {on} "  # noqa: S608 - fixed names
    if update:
        sql += "WHEN MATCHED THEN UPDATE SET " + ", ".join(f"{c} = s.{c}" for c in update) + " "
    sql += f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}) VALUES ({', '.join('s.' + c for c in cols)})"
    con.register(name, src)
    try:
        con.execute(sql)
    finally:
        con.unregister(name)
