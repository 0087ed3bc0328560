"""Applying the migrations of `traces.schema` to a store, on a DuckDB file or a lake.

A store is brought up to date when it is opened, one migration per
transaction. DuckLake takes no keys, indexes or sequences, so on a lake each
statement is first rewritten by `for_lake`; several processes opening a new
lake at once race, and the loser of each migration reads the version again.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import duckdb

from traces import schema


class SchemaTooNew(RuntimeError):
    pass


_LAKE_DROP = re.compile(r"^\s*CREATE\s+(UNIQUE\s+)?(INDEX|SEQUENCE)\b", re.I)
_LAKE_COLUMN_KEY = re.compile(r"\s+PRIMARY KEY(?!\s*\()|\s+DEFAULT nextval\('[^']*'\)", re.I)
_LAKE_TABLE_KEY = re.compile(r",\s*(PRIMARY KEY|UNIQUE)\s*\([^)]*\)", re.I)


def for_lake(stmt: str) -> str | None:
    """A statement as DuckLake takes it: no keys, indexes or sequences (None: skip it).

    DuckLake tables have no constraints, so uniqueness is kept by the code that
    writes (`traces.store.merge` and claims), never by the table; the local
    DuckDB file keeps its keys as a second line of defence.
    """
    if _LAKE_DROP.match(stmt):
        return None
    return _LAKE_TABLE_KEY.sub("", _LAKE_COLUMN_KEY.sub("", stmt))


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations' "
        "AND table_schema = current_schema() AND table_catalog = current_database()"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection, target: int | None = None, *, lake: bool = False) -> list[int]:
    """Apply pending migrations up to `target` (default: all). Returns versions applied.

    On a lake several processes may open a new store at once: a migration that
    loses the race is rolled back and the version read again.
    """
    target = schema.LATEST if target is None else target
    for attempt in range(20):
        try:
            return _migrate(con, target, lake)
        except (duckdb.TransactionException, duckdb.CatalogException, duckdb.ConstraintException):
            if not lake or attempt == 19:
                raise
            time.sleep(0.05 * (attempt + 1))
    return []


def _migrate(con: duckdb.DuckDBPyConnection, target: int, lake: bool) -> list[int]:
    have = current_version(con)  # a read: stores already up to date take no write lock here
    if have > schema.LATEST:
        raise SchemaTooNew(
            f"this store is at schema version {have}, newer than this Libra ({schema.LATEST}); "
            "upgrade Libra to open it"
        )
    if have >= target:
        return []
    con.execute(for_lake(schema.MIGRATIONS_DDL) if lake else schema.MIGRATIONS_DDL)
    applied = []
    for m in schema.MIGRATIONS:
        if m.version <= have or m.version > target:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            if current_version(con) >= m.version:  # another process got there first
                con.execute("ROLLBACK")
                continue
            for stmt in m.statements:
                stmt = for_lake(stmt) if lake else stmt
                if stmt is not None:
                    con.execute(stmt)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                [m.version, m.name, datetime.now(UTC).replace(tzinfo=None)],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(m.version)
    return applied
